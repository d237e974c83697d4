"""Hypothesis strategies for testing SSE parsers, clients and servers (needs ``hypothesis``)."""

from ._strategies import (
    EncodedStream,
    chunkings,
    event_data,
    events,
    fault_schedules,
    scenarios,
    streams,
)

__all__ = [
    "EncodedStream",
    "chunkings",
    "event_data",
    "events",
    "fault_schedules",
    "scenarios",
    "streams",
]
