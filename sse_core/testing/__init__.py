"""Deterministic simulation of sessions on a faulty network (floor 4).

Import it by name (``import sse_core.testing``); it is not re-exported from ``sse_core``.
Hypothesis strategies live in :mod:`sse_core.testing.strategies` (needs ``hypothesis``).
"""

from ._simulator import (
    BufferingProxy,
    ClientFactory,
    Cut,
    Deploy,
    Fault,
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
    "BufferingProxy",
    "ClientFactory",
    "Cut",
    "Deploy",
    "Fault",
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
