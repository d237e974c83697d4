"""Type stub of the optional C accelerator ``sse_core._speedups`` (floor 1)."""

from ._events import Comment, Event, Retry
from ._parser import Parser

__all__ = [
    "event_init", "feed", "is_event_call_direct", "process", "serialize", "serialize_event"
]

def process(parser: Parser, complete: str, out: list[Event | Comment | Retry], /) -> None:
    """``Parser._process`` in C."""

def feed(parser: Parser, /, data: bytes | bytearray | memoryview) -> list[Event | Comment | Retry]:
    """``Parser.feed`` in C, with its docstring."""

def event_init(
    self: Event,
    /,
    *,
    data: str,
    event: str = "message",
    id: str | None = None,
    last_event_id: str = "",
) -> None:
    """``Event.__init__`` in C."""

def serialize(item: Event | Comment | Retry) -> bytes:
    """``sse_core._serializer.serialize`` in C."""

def serialize_event(
    data: str, *, event: str | None = None, id: str | None = None, retry: int | None = None
) -> bytes:
    """``sse_core._serializer.serialize_event`` in C."""

def is_event_call_direct() -> bool:
    """Whether calling ``Event`` skips ``type.__call__`` (C ``__init__`` called directly)."""
