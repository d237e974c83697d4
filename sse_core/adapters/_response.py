"""What the per-request responses share (floor 4): the rule for what an application's stream
yields, and one request's :class:`~sse_core.ServerSession` with its optional replay log.

No I/O and no waiting: the ASGI (:mod:`sse_core.adapters.asgi`), aiohttp
(:mod:`sse_core.adapters.aiohttp`) and WSGI (:mod:`sse_core.adapters.wsgi`) responses carry
out the actions returned here, in their own way (the two async ones through the loop of
``_async_response``).

The items rule, the same in all three: an application's stream yields

- an :class:`~sse_core.Event`, sent as it is;
- a ``str``, the ``data`` of a ``message`` event (``"a\\nb"`` becomes two ``data:`` lines);
- a mapping with some of the keys ``"data"`` (a ``str``), ``"event"``, ``"id"`` (both
  ``str``) and ``"retry"`` (an ``int``, milliseconds): the event those fields make, after a
  ``retry:`` line when ``"retry"`` is there; a mapping with ``"retry"`` alone sends only that.

Anything else -- ``bytes``, ``None``, a number, a mapping with another key or ``data`` that is
not a ``str`` (``json.dumps`` it first) -- raises :class:`TypeError`, which ends the stream
as an exception from the application does.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from .. import ServerConfig, ServerSession
from .._actions import Action
from .._errors import InvalidConfigError
from .._events import Event, Retry
from .._replay import ReplayLog
from .._serializer import serialize_block
from ._base import options_or_default
from ._options import ServerOptions

__all__ = ["Item", "ResponseBase", "Source", "SyncSource", "event_of"]

#: What an application's stream may yield (see the module's rule).
Item = Event | str | Mapping[str, Any]

#: The ASGI response's source: an async iterable of items, or a function of the request's
#: last event ID (``""`` for a new client) that returns one.
Source = AsyncIterable[Item] | Callable[[str], AsyncIterable[Item]]
#: The WSGI response's source: an iterable of items, or a function of the last event ID.
SyncSource = Iterable[Item] | Callable[[str], Iterable[Item]]

_Source = TypeVar("_Source", Source, SyncSource)

_KEYS = frozenset({"data", "event", "id", "retry"})


def event_of(item: object) -> tuple[Retry | None, Event | None]:
    """The ``retry:`` hint and the event an item stands for (see the module's rule).

    Raises:
        TypeError: the item is none of the kinds the rule allows.
        InvalidFieldError: a field's text is not allowed (an ``id`` with a line break ...).
    """
    if isinstance(item, Event):
        return None, item
    if isinstance(item, str):
        return None, Event(data=item)
    if not isinstance(item, Mapping):
        raise TypeError(
            "an event stream yields Event, str or a mapping of data/event/id/retry, "
            f"not {type(item).__name__}"
        )
    unknown = set(item) - _KEYS
    if unknown:
        raise TypeError(
            f"an event mapping has only the keys data, event, id and retry, not {sorted(unknown)}"
        )
    retry = item.get("retry")
    if retry is not None and (not isinstance(retry, int) or isinstance(retry, bool)):
        raise TypeError(f"'retry' is an int of milliseconds, not {type(retry).__name__}")
    hint = None if retry is None else Retry(milliseconds=retry)
    if set(item) <= {"retry"}:
        return hint, None
    data = item.get("data", "")
    if not isinstance(data, str):
        raise TypeError(
            f"'data' is a str (json.dumps(...) it first), not {type(data).__name__}"
        )
    return hint, Event(data=data, event=item.get("event", "message"), id=item.get("id"))


class ResponseBase(Generic[_Source]):
    """What every ``StreamResponse`` class is made of: one request's
    :class:`~sse_core.ServerSession` and the application's source, and the session's actions
    for the head, each item, heartbeats and the end. The subclasses document the arguments.

    Raises:
        InvalidConfigError: a bad argument.
        TypeError: ``source`` is neither an iterable nor callable.
    """

    def __init__(
        self,
        source: _Source,
        *,
        config: ServerConfig | None = None,
        options: ServerOptions | None = None,
        replay_log: ReplayLog | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if config is None:
            config = ServerConfig()
        if not isinstance(config, ServerConfig):
            raise InvalidConfigError(f"config must be a ServerConfig, got {config!r}")
        if replay_log is not None and not isinstance(replay_log, ReplayLog):
            raise InvalidConfigError(f"replay_log must be a ReplayLog, got {replay_log!r}")
        if clock is not None and not callable(clock):
            raise InvalidConfigError(f"clock must be callable, got {clock!r}")
        if not (_is_iterable(source) or callable(source)):
            raise TypeError(
                f"an event stream's source is an iterable or a function returning one, "
                f"not {type(source).__name__}"
            )
        self._options = options_or_default(options, ServerOptions)
        self._clock = clock if clock is not None else time.monotonic
        self._session = ServerSession(config, replay_log)
        self._source: object = source
        self._log = replay_log
        self._setup()

    def _setup(self) -> None:
        """Make the subclass's own state (the last step of ``__init__``)."""

    @property
    def last_event_id(self) -> str:
        """The request's last event ID (``""`` for a new client), once the response runs."""
        return self._session.last_event_id

    def _begin(
        self, target: str, headers: Sequence[tuple[str | bytes, str | bytes]]
    ) -> list[Action]:
        """Answer the request: the head, then padding, ``retry:`` and the replay's first step
        (the rest, while the session is replaying, from :meth:`_replay_step`)."""
        return self._session.on_request(target, headers, self._clock())

    def _replay_step(self) -> list[Action]:
        """The replay's next step."""
        return self._session.continue_replay(self._clock())

    def _iterable(self) -> Any:
        """The application's iterable for this request (the function called with the last
        event ID, when the source is one)."""
        source = self._source
        if _is_iterable(source) or not callable(source):
            return source
        return source(self._session.last_event_id)

    def _send_item(self, item: object) -> list[Action]:
        """The actions that send one item of the application's stream.

        Raises:
            TypeError: the item breaks the items rule.
            InvalidFieldError: a field's text is not allowed, or the log refused the id.
        """
        hint, event = event_of(item)
        now = self._clock()
        actions: list[Action] = []
        if hint is not None:
            actions += self._session.send(serialize_block(hint), now)
        if event is not None:
            if self._log is not None:
                actions += self._session.send(self._log.append(event, now), now)
            else:
                actions += self._session.send(event, now)
        return actions

    def _delay(self) -> float | None:
        """Seconds until the next heartbeat is due, or ``None`` for none."""
        deadline = self._session.next_deadline()
        return None if deadline is None else max(0.0, deadline - self._clock())

    def _heartbeat(self) -> list[Action]:
        """A heartbeat, if one is due."""
        return self._session.on_timer(self._clock())

    def _close(self) -> list[Action]:
        """The end of the stream (the gzip trailer first, when compressing)."""
        return self._session.close(self._clock())


def _is_iterable(source: object) -> bool:
    return hasattr(source, "__aiter__") or hasattr(source, "__iter__")
