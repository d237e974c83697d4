"""Type stub of the optional C accelerator ``sse_core._speedups`` (floor 1).

The boundary is described at the top of ``_speedups.c`` and in ``docs/parser.rst``.
"""

from collections.abc import Callable
from typing import Any

from ._events import Comment, Event, Retry

__all__ = ["EventInit", "Scanner", "write_event"]

class Scanner:
    """The parse state of one stream and the scan over it (``_parser._Scanner`` in C)."""

    def __init__(
        self,
        max_line_length: int,
        max_event_size: int,
        last_event_id: str,
        event: type[Event],
        comment: type[Comment],
        retry: type[Retry],
        limit_exceeded: type[Exception],
        /,
    ) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview, /) -> list[Event | Comment | Retry]:
        """Parse the next chunk; return the items it completed."""
    def end(self) -> bool:
        """End of stream: whether an event was cut short."""
    @property
    def data(self) -> list[str]: ...
    @property
    def data_size(self) -> int: ...
    @property
    def event_type(self) -> str: ...
    @property
    def own_id(self) -> str | None: ...
    @property
    def id_buffer(self) -> str: ...
    @property
    def last_event_id(self) -> str: ...
    @property
    def tail(self) -> list[str]: ...
    @property
    def tail_size(self) -> int: ...
    @property
    def pending_lf(self) -> bool: ...
    @property
    def is_at_start(self) -> bool: ...
    @property
    def undecoded(self) -> bytes: ...

def write_event(data: object, event: object, id: object, retry: object, /) -> bytes | None:
    """The bytes of the common valid event, else None (the caller does the rest)."""

class EventInit:
    """``Event.__init__`` in C for the common valid call; other calls go to ``init``."""

    __wrapped__: Callable[..., None]

    def __init__(self, init: Callable[..., None], /) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> None: ...
    def __set_name__(self, owner: type, name: str, /) -> None: ...
