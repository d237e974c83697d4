"""Type stub of the optional C accelerator ``sse_core._speedups`` (floor 1)."""

from ._events import Comment, Event, Retry
from ._parser import Parser

__all__ = ["feed", "process"]

def process(parser: Parser, complete: str, out: list[Event | Comment | Retry], /) -> None:
    """``Parser._process`` in C."""

def feed(parser: Parser, data: bytes | bytearray | memoryview, /) -> list[Event | Comment | Retry]:
    """``Parser.feed`` in C."""
