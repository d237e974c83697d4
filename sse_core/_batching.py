"""Batcher: deliveries grouped into batches by count and by time (floor 3: a state object
over the sessions' actions).

A burst of events is better shown as one update than as a hundred: :class:`Batcher` takes a
session's actions and hands the events on as :class:`~sse_core.DeliverBatch` records of at most
``max_events``, each going out at the latest ``max_delay`` seconds after its first event
arrived. Order and exactly-once are kept: every other report for the application (a status,
a gap, a failure ...) first lets out what is pending, so nothing overtakes an event that
arrived before it; a disconnect or a close always comes with a status, so it flushes too.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ._actions import Action, Connect, Deliver, DeliverBatch, Disconnect
from ._events import Event
from ._validators import MonotonicNow, non_negative_number, positive_int

__all__ = ["BatchConfig", "Batcher", "one_per_event"]


@attrs.frozen(kw_only=True)
class BatchConfig:
    """Limits of a :class:`Batcher`.

    Attributes:
        max_events: Most events in one batch; a batch that reaches it goes out at once.
        max_delay: Most seconds an event waits for others (from the first event of the
            batch). ``0`` makes one batch of each input's events.

    Raises:
        InvalidConfigError: on construction, when a value is out of range or of the wrong type.
    """

    max_events: int = attrs.field(default=20, validator=positive_int)
    max_delay: float = attrs.field(default=0.05, validator=non_negative_number)


class Batcher(MonotonicNow):
    """Groups the deliveries of a session into batches: its :class:`~sse_core.Deliver`
    actions and the runs of events it hands out as :class:`~sse_core.DeliverBatch`.

    Feed it each input's actions (:meth:`feed`) and wake it at :meth:`next_deadline`
    (:meth:`poll`). :class:`~sse_core.Connect` and :class:`~sse_core.Disconnect` (the I/O
    layer's business) pass as they are.

    Args:
        config: The limits; ``BatchConfig()`` when omitted.
    """

    __slots__ = ("_config", "_first_at", "_pending")

    def __init__(self, config: BatchConfig | None = None) -> None:
        MonotonicNow.__init__(self)
        self._config = BatchConfig() if config is None else config
        self._pending: list[Event] = []
        self._first_at = 0.0  # when the first pending event arrived

    @property
    def config(self) -> BatchConfig:
        """The limits this batcher was built with."""
        return self._config

    @property
    def pending(self) -> int:
        """How many events wait for their batch to go out."""
        return len(self._pending)

    def next_deadline(self) -> float | None:
        """When the pending batch is due, or ``None`` when nothing is pending."""
        if not self._pending:
            return None
        return self._first_at + self._config.max_delay

    def feed(self, actions: list[Action], now: float) -> list[Action]:
        """Take one input's actions; return them with the events batched.

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._take_now(now)
        out: list[Action] = []
        for action in actions:
            if isinstance(action, DeliverBatch):
                self._add(action.events, now, out)
            elif isinstance(action, Deliver):
                self._add((action.event,), now, out)
            elif isinstance(action, (Connect, Disconnect)):
                out.append(action)
            else:  # a report for the application: what arrived before it goes first
                if self._pending:
                    out.append(self._flush())
                out.append(action)
        if self._pending and self._config.max_delay == 0:
            out.append(self._flush())
        return out

    def poll(self, now: float) -> list[Action]:
        """The clock reached :meth:`next_deadline`: the pending batch, when it is due.

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._take_now(now)
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return []
        return [self._flush()]

    def _add(self, events: Sequence[Event], now: float, out: list[Action]) -> None:
        """Add ``events`` to the pending batch; each batch that fills up goes to ``out``."""
        pending = self._pending
        limit = self._config.max_events
        start = 0
        while start < len(events):
            if not pending:
                self._first_at = now
            end = start + limit - len(pending)
            pending.extend(events[start:end])
            start = end
            if len(pending) >= limit:
                out.append(self._flush())

    def _flush(self) -> DeliverBatch:
        batch = DeliverBatch(events=self._pending)  # a tuple of its own
        self._pending.clear()
        return batch


def one_per_event(actions: list[Action]) -> list[Action]:
    """``actions`` with each :class:`~sse_core.DeliverBatch` as a :class:`~sse_core.Deliver`
    per event, in order (``actions`` itself when there is none): what the application sees,
    one event at a time."""
    if not any(type(action) is DeliverBatch for action in actions):
        return actions
    out: list[Action] = []
    for action in actions:
        if isinstance(action, DeliverBatch):
            out += [Deliver(event=event) for event in action.events]
        else:
            out.append(action)
    return out
