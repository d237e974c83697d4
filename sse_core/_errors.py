"""The one exception tree of sse_core (floor 0: imports nothing of ours).

Every exception that leaves the library is an :class:`SSEError`. The two branches follow
the names the sans-IO family (h11, wsproto) taught users:

* :class:`LocalProtocolError` -- the caller broke a rule (bad argument, misuse of an object).
  :class:`InvalidFieldError` is the case of text that cannot be written to a stream; it is
  also a :class:`ValueError`, as is :class:`InvalidConfigError` for bad configuration and
  :class:`ClockError` for a ``now`` that goes backwards or is not a finite number.
* :class:`RemoteProtocolError` -- the peer sent something we refuse. :class:`LimitExceeded`
  is the case of a peer crossing a size or count limit the caller set. :class:`StreamError`
  (with :class:`HTTPStatusError` under it) is what an adapter's iteration raises when the
  stream ended in a way the session could not recover from, and :class:`GapError` what it
  raises when events were lost for good. :class:`LogUnavailableError` is what a shared event
  log kept in another server (Redis) raises when that server cannot take or answer a command.

The root itself is never raised (as h11 refuses to raise its own): ``SSEError()`` is a
:class:`TypeError`, so every error says which side broke a rule.

A session whose input raised :class:`LocalProtocolError` has been misused: it stays failed
(:func:`sticky`) and every later input raises :class:`LocalProtocolError`, chained to the first.
A :class:`ClockError` is the exception: the input was refused before it changed anything, so
the session stays usable.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

__all__ = [
    "ClockError",
    "GapError",
    "HTTPStatusError",
    "InvalidConfigError",
    "InvalidFieldError",
    "LimitExceeded",
    "LocalProtocolError",
    "IdempotencyConflictError",
    "LogUnavailableError",
    "RemoteProtocolError",
    "SSEError",
    "StreamError",
]


class SSEError(Exception):
    """Root of every exception raised by sse_core.

    Catch it; never raise it: ``SSEError(...)`` raises :class:`TypeError`. Raise (and expect)
    one of its branches, :class:`LocalProtocolError` or :class:`RemoteProtocolError`.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> SSEError:
        if cls is SSEError:
            raise TypeError(
                "SSEError is the root of sse_core's errors and is never raised itself; "
                "raise LocalProtocolError or RemoteProtocolError (or a subclass)"
            )
        return super().__new__(cls, *args, **kwargs)


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


class StreamError(RemoteProtocolError):
    """The stream ended in a way the session cannot recover from.

    Raised where the application iterates an adapter's ``EventSource``, after every event
    that came before the end was handed out: the server refused the stream (a response that
    is not an event stream), the backoff policy gave up, or a request that may not be sent
    twice (a ``POST`` with no event id to resume from) was cut. A ``close()`` by the
    application never raises it.

    Attributes:
        reason: What happened, for people.
        report: The session's :class:`~sse_core.ReportFailure` (cause, status, headers and
            the first bytes of the body).
    """

    def __init__(self, reason: str, report: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.report = report


#: How many bytes of a refused body an HTTPStatusError's message shows.
_PREVIEW = 200


class HTTPStatusError(StreamError):
    """The server answered with an HTTP error status instead of an event stream.

    Attributes:
        status: The HTTP status code.
        headers: The response header fields, as ``(name, value)`` str pairs.
        body: The first bytes of the response body (at most the client's
            ``max_error_body_size``), as received.
    """

    def __init__(
        self,
        reason: str,
        report: Any,
        *,
        status: int,
        headers: tuple[tuple[str, str], ...],
        body: bytes,
    ) -> None:
        super().__init__(reason, report)
        if body:  # the message shows the start of what the server said
            preview = body[:_PREVIEW].decode("utf-8", "replace")
            more = "..." if len(body) > _PREVIEW else ""
            self.args = (f"{reason}: {preview!r}{more}",)
        self.status = status
        self.headers = headers
        self.body = body


class GapError(RemoteProtocolError):
    """Events were lost and cannot be recovered (a :class:`~sse_core.ReportGap`).

    Raised by the plain loop over an adapter's ``EventSource`` when the session reports a
    gap. It ends nothing: catch it and iterate the source again to go on after the gap.

    Attributes:
        report: The :class:`~sse_core.ReportGap` (why, and which events when known).
    """

    def __init__(self, report: Any) -> None:
        super().__init__(f"events were lost: {report!r}")
        self.report = report


class LogUnavailableError(RemoteProtocolError):
    """A shared event log kept in another server (Redis) could not carry out a command.

    Raised by a log's ``append`` when the server is unreachable, timed out or refused the
    command: the event is not acknowledged, so do not tell anyone it was published. (A
    timeout can come after the server stored it: publishing again may store it twice, and
    readers then see it twice, under two ids -- unless both appends carry the same
    ``idempotency_key``.) Raised by ``resume``, ``oldest`` and
    ``position`` for the same causes; nothing was changed on the caller's side.

    Attributes:
        operation: What the log was doing: ``"append"``, ``"resume"``, ``"read"`` (for
            ``oldest``) or ``"position"``.
    """

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(f"the shared event log's {operation} failed: {reason}")
        self.operation = operation


class IdempotencyConflictError(LocalProtocolError):
    """An append under an idempotency key that an earlier append, of another event, used.

    A keyed append that a shared log already answered returns the first answer (the same
    id) when it carries the same event; a different event under the same key is refused,
    before anything is stored: the key names one event.

    Attributes:
        key: The idempotency key.
        stored_id: The id of the event first appended under it.
    """

    def __init__(self, key: str, stored_id: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was used for another event (stored as {stored_id!r});"
            " a key names one event"
        )
        self.key = key
        self.stored_id = stored_id


class ClockError(LocalProtocolError, ValueError):
    """A ``now`` that is not a finite number of seconds, or earlier than one given before.

    Every object that takes ``now`` raises it, before changing anything, so a caller that
    mixed clocks (a wall clock for a monotonic one) learns it at the first wrong call.

    Attributes:
        now: The value that was refused.
        latest: The latest ``now`` the object had been given, or ``None`` when ``now`` was
            refused for not being a finite number.
    """

    def __init__(self, now: object, latest: float | None) -> None:
        if latest is None:
            message = f"now must be a finite number of seconds, got {now!r}"
        else:
            message = f"now went backwards: got {now!r} after {latest!r} (pass a monotonic clock)"
        super().__init__(message)
        self.now = now
        self.latest = latest


class _Session(Protocol):
    _failure: LocalProtocolError | None


_S = TypeVar("_S", bound=_Session)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def sticky(method: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], _R]:
    """Make a session input fail for good on misuse (h11's ERROR state).

    The decorated method of a session (which keeps ``_failure``, ``None`` at first) records
    any :class:`LocalProtocolError` it raises; from then on every decorated method of that
    session raises a new :class:`LocalProtocolError` that says the session failed earlier and
    why, chained (``__cause__``) to the first error.
    """
    name = method.__name__

    @functools.wraps(method)
    def guarded(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        failure = self._failure
        if failure is not None:
            raise LocalProtocolError(
                f"{name}() refused: this {type(self).__name__} failed earlier ({failure}); "
                "a misused session takes no more input (make a new one)"
            ) from failure
        try:
            return method(self, *args, **kwargs)
        except ClockError:
            raise  # refused before anything changed: the session is intact
        except LocalProtocolError as error:
            self._failure = error
            raise

    return guarded
