"""Deterministic simulation of sessions on a faulty network (floor 4).

Import it by name (``import sse_core.testing``); it is not re-exported from ``sse_core``.
:class:`FaultProxy` is a real TCP proxy on loopback (asyncio) that injects faults into the
connections it relays, for tests of the adapters. Hypothesis strategies live in
:mod:`sse_core.testing.strategies` (needs ``hypothesis``).
"""

from ._proxy import (
    CutAfter,
    Delay,
    FaultProxy,
    Pass,
    ProxyFault,
    ProxyStats,
    Refuse,
    ResetAfter,
    StallAfter,
    random_fault,
)
from ._simulator import (
    BufferingProxy,
    ClientFactory,
    Cut,
    Deploy,
    Fault,
    Handoff,
    Offline,
    Partition,
    Recorded,
    Reset,
    Restart,
    Scenario,
    SimulationResult,
    SlowLink,
    Stall,
    check_record,
    random_scenario,
    simulate,
)

__all__ = [
    "CutAfter",
    "Delay",
    "FaultProxy",
    "Pass",
    "ProxyFault",
    "ProxyStats",
    "Refuse",
    "ResetAfter",
    "StallAfter",
    "random_fault",
    "BufferingProxy",
    "ClientFactory",
    "Cut",
    "Deploy",
    "Fault",
    "Handoff",
    "Offline",
    "Partition",
    "Recorded",
    "Reset",
    "Restart",
    "Scenario",
    "SimulationResult",
    "SlowLink",
    "Stall",
    "check_record",
    "random_scenario",
    "simulate",
]
