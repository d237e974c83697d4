"""The one exception tree of sse_core (floor 0: imports nothing of ours).

Every exception that leaves the library is an :class:`SSEError`. The two branches follow
the names the sans-IO family (h11, wsproto) taught users:

* :class:`LocalProtocolError` -- the caller broke a rule (bad argument, misuse of an object).
  :class:`InvalidFieldError` is the case of text that cannot be written to a stream; it is
  also a :class:`ValueError`, as is :class:`InvalidConfigError` for bad configuration.
* :class:`RemoteProtocolError` -- the peer sent something we refuse. :class:`LimitExceeded`
  is the case of a peer crossing a size or count limit the caller set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "InvalidConfigError",
    "InvalidFieldError",
    "LimitExceeded",
    "LocalProtocolError",
    "RemoteProtocolError",
    "SSEError",
]


class SSEError(Exception):
    """Root of every exception raised by sse_core."""


class LocalProtocolError(SSEError):
    """The caller broke a rule: invalid arguments or misuse of an object's lifecycle."""


class InvalidFieldError(LocalProtocolError, ValueError):
    """A field value that cannot be written without corrupting or injecting into the stream.

    Attributes:
        field: Name of the offending field (``"event"``, ``"id"``, ``"retry"``, ``"comment"``).
        value: The value that was refused.
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"invalid {field!s} field {value!r}: {reason}")
        self.field = field
        self.value = value


class InvalidConfigError(LocalProtocolError, ValueError):
    """A configuration value is out of range or inconsistent with another one."""


class RemoteProtocolError(SSEError):
    """The peer sent something the library refuses to accept."""


class LimitExceeded(RemoteProtocolError):
    """Input crossed a limit that the caller configured.

    Nothing already returned to the caller is lost: items that were parsed in the same call
    before the limit was crossed are carried in :attr:`items`.

    Attributes:
        limit: Name of the limit (the configuration keyword, e.g. ``"max_line_length"``).
        value: The size or count that was seen (at least ``maximum + 1``).
        maximum: The configured maximum.
        items: Items produced by the failing call before the limit was crossed, in order.
    """

    def __init__(
        self, limit: str, value: int, maximum: int, items: Sequence[Any] = ()
    ) -> None:
        super().__init__(f"{limit} exceeded: saw {value}, maximum is {maximum}")
        self.limit = limit
        self.value = value
        self.maximum = maximum
        self.items: list[Any] = list(items)
