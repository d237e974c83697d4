"""What a client does with parsed events before the application sees them (floor 3).

:class:`DeliveryPipeline` takes the events a :class:`~sse_core.ClientSession` parsed (from a
stream or a long-poll answer) and returns actions, in this order of stages:

1. chunk assembly (optional, :class:`~sse_core.state.ChunkAssembler`): chunk events become whole
   messages; a message that cannot be assembled is reported (:class:`ReportDropped`);
2. the server's gap signal (:data:`~sse_core.state.GAP_EVENT_TYPE`) becomes :class:`ReportGap`, and
   its position blocks (:data:`~sse_core.state.POSITION_EVENT_TYPE`) are dropped: the parser has
   already made their id the client's last event ID, and they are no message;
3. dedup by ``id`` (:class:`~sse_core.state.DedupWindow`): replayed events are dropped, counted;
4. ordering by sequence number (optional, :class:`~sse_core.state.Sequencer`): the number is read
   from the event id as the :class:`~sse_core.state.ReplayLog` assigns it -- ``<epoch>-<n>`` or
   ``<n>`` -- and a hole not filled in time is reported (a :class:`ReportGap` naming the
   missing numbers). Events whose id carries no number are delivered as they come. A new
   epoch (a restarted server) releases what the old one held and starts numbering afresh.

Nothing is dropped without a report or a counter, but position blocks, which carry no message.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence

from ._actions import (
    GAP_EVENT_TYPE,
    POSITION_EVENT_TYPE,
    Action,
    Deliver,
    DeliverBatch,
    ReportDropped,
    ReportGap,
)
from ._chunking import ChunkAssembler, ChunkConfig, ChunkLimitExceeded, MessageDropped
from ._dedup import DedupConfig, DedupWindow
from ._events import Event
from ._metrics import MetricsRecorder
from ._sequencer import Released, Sequencer, SequencerConfig, SequencerRecord
from ._validators import MonotonicNow

__all__ = ["DeliveryPipeline", "sequence_number"]

#: Event types the pipeline acts on itself rather than delivering.
_SPECIAL_TYPES = frozenset((GAP_EVENT_TYPE, POSITION_EVENT_TYPE))

_type_of = operator.attrgetter("event")
_id_of = operator.attrgetter("id")


def sequence_number(id: str | None) -> tuple[str, int] | None:
    """Split an id of the form ``<epoch>-<n>`` or ``<n>`` into ``(epoch, n)``.

    Args:
        id: An event id, or ``None``.

    Returns:
        ``(epoch, n)`` -- epoch ``""`` for a bare number -- or ``None`` when the id does not
        end in ASCII digits (at most 18 of them).
    """
    if not id:
        return None
    epoch, _, digits = id.rpartition("-")
    if not digits or len(digits) > 18 or not (digits.isdigit() and digits.isascii()):
        return None
    return epoch, int(digits)


class DeliveryPipeline(MonotonicNow):
    """Assembly, gap signals, dedup and ordering between the parser and the application.

    It checks ``now`` once on the way in (see :doc:`/state/clock`), so a ``now`` that goes
    backwards is refused before any stage changed, whichever stages are on.

    Args:
        metrics: The counters to update (messages delivered, duplicates, gaps).
        dedup: Limits of the dedup window, or ``None`` for no dedup.
        sequencer: Limits of the sequencer, or ``None`` to deliver in arrival order.
        chunking: Limits of the chunk assembler, or ``None`` to leave chunk events alone.
    """

    __slots__ = ("_assembler", "_dedup", "_epoch", "_metrics", "_sequencer", "_sequencer_config")

    def __init__(
        self,
        *,
        metrics: MetricsRecorder,
        dedup: DedupConfig | None,
        sequencer: SequencerConfig | None,
        chunking: ChunkConfig | None,
    ) -> None:
        MonotonicNow.__init__(self)
        self._metrics = metrics
        self._dedup = DedupWindow(dedup) if dedup is not None else None
        self._sequencer_config = sequencer
        self._sequencer: Sequencer[Event] | None = None
        self._epoch: str | None = None
        self._assembler = ChunkAssembler(chunking) if chunking is not None else None

    def next_deadline(self) -> float | None:
        """When :meth:`poll` has work: a reorder hole or a chunked message times out."""
        deadlines = [
            deadline
            for deadline in (
                self._sequencer.next_deadline() if self._sequencer is not None else None,
                self._assembler.next_deadline() if self._assembler is not None else None,
            )
            if deadline is not None
        ]
        return min(deadlines) if deadlines else None

    def push(self, events: Sequence[Event], now: float, actions: list[Action]) -> None:
        """Take the events parsed from one input, in order; append what the application
        must see to ``actions``: the events delivered come as :class:`~sse_core.DeliverBatch`
        runs (one for the whole input when nothing else comes between them), or as a
        :class:`~sse_core.Deliver` each when the sequencer or the chunk assembler decides
        each event's fate."""
        self._take_now(now)
        if self._assembler is None and self._sequencer_config is None:
            self._accept_all(events, now, actions)
            return
        for event in events:
            self._push_one(event, now, actions)

    def _accept_all(self, events: Sequence[Event], now: float, actions: list[Action]) -> None:
        """The common case (no assembly, no ordering): the stages of :meth:`_accept` over the
        whole input. Without a gap signal or a position block among the events, dedup is
        asked once for all their ids and what it keeps goes out as one run."""
        if not _SPECIAL_TYPES.isdisjoint(map(_type_of, events)):
            self._accept_runs(events, now, actions)
            return
        kept = events
        if self._dedup is not None:
            ids: list[str] = list(filter(None, map(_id_of, events)))
            repeats = self._dedup.check_all(ids, now)
            if any(repeats):
                is_repeat = iter(repeats)
                kept = [event for event in events if not (event.id and next(is_repeat))]
                self._metrics.record_duplicates(len(events) - len(kept))
        if kept:
            self._metrics.record_messages(len(kept))
            actions.append(DeliverBatch(events=kept))

    def _accept_runs(self, events: Sequence[Event], now: float, actions: list[Action]) -> None:
        """:meth:`_accept_all` when gap signals or position blocks come among the events:
        the events between them go out as runs, each special event in its place."""
        run: list[Event] = []
        for event in events:
            if event.event in _SPECIAL_TYPES:
                self._accept_all(run, now, actions)
                run = []
                self._accept(event, now, actions)
            else:
                run.append(event)
        self._accept_all(run, now, actions)

    def _push_one(self, event: Event, now: float, actions: list[Action]) -> None:
        if self._assembler is None:
            self._accept(event, now, actions)
            return
        try:
            outputs = self._assembler.feed(event, now)
        except ChunkLimitExceeded as error:
            # The assembler dropped the offending message and stays consistent.
            for item in error.items:
                self._route(item, now, actions)
            self._metrics.record_gap(1)  # the one message the assembler dropped
            actions.append(
                ReportDropped(message_id=error.message_id, reason="limit", detail=str(error))
            )
            return
        for output in outputs:
            self._route(output, now, actions)

    def buffered(self) -> tuple[int, int]:
        """What the stages hold now: events in the sequencer, incomplete chunked messages."""
        return (
            self._sequencer.buffered_count if self._sequencer is not None else 0,
            len(self._assembler) if self._assembler is not None else 0,
        )

    def poll(self, now: float, actions: list[Action]) -> None:
        """The clock reached :meth:`next_deadline`: report what timed out, deliver what can go."""
        self._take_now(now)
        if self._assembler is not None:
            for dropped in self._assembler.poll(now):
                self._route(dropped, now, actions)
        if self._sequencer is not None:
            self._emit(self._sequencer.poll(now), actions)

    def flush(self, actions: list[Action]) -> None:
        """The stream is over for good: release everything the sequencer holds."""
        if self._sequencer is not None:
            self._emit(self._sequencer.flush(), actions)
            self._sequencer = None

    # --- internals ------------------------------------------------------------------------

    def _route(self, item: object, now: float, actions: list[Action]) -> None:
        if isinstance(item, MessageDropped):
            self._metrics.record_gap(1)
            actions.append(
                ReportDropped(message_id=item.message_id, reason=item.reason.value,
                              detail=item.detail)
            )
        elif isinstance(item, Event):
            self._accept(item, now, actions)

    def _accept(self, event: Event, now: float, actions: list[Action]) -> None:
        if event.event == POSITION_EVENT_TYPE:
            # Where the stream stands, not a message: neither delivered, counted, nor seen by
            # dedup or the sequencer (after a gap it repeats the id of the last event kept).
            return
        if event.event == GAP_EVENT_TYPE:
            # Events before this point are gone for good: stop waiting for them.
            self.flush(actions)
            actions.append(self._gap_report(event))
            return
        if self._dedup is not None and event.id and self._dedup.check(event.id, now):
            self._metrics.record_duplicates()
            return
        numbered = sequence_number(event.id) if self._sequencer_config is not None else None
        if numbered is None:
            self._deliver(event, actions)
            return
        epoch, number = numbered
        if self._sequencer is None or epoch != self._epoch:
            self.flush(actions)
            self._sequencer = Sequencer(self._sequencer_config)
            self._epoch = epoch
        self._emit(self._sequencer.push(number, event, now), actions)

    def _emit(self, records: list[SequencerRecord[Event]], actions: list[Action]) -> None:
        for record in records:
            if isinstance(record, Released):
                self._deliver(record.item, actions)
            else:
                self._metrics.record_gap(record.count)
                actions.append(
                    ReportGap(first=record.first, last=record.last, reason=record.reason.value)
                )

    def _deliver(self, event: Event, actions: list[Action]) -> None:
        self._metrics.record_messages()
        actions.append(Deliver(event=event))

    def _gap_report(self, event: Event) -> ReportGap:
        missed: int | None = None
        try:
            body = json.loads(event.data)
            last_event_id = str(body["last_event_id"])
            reason = str(body["reason"])
            # How many were lost, when the server's log knew (absent in the older form); a
            # value that is not a count is ignored: the gap then has no known size.
            count = body.get("missed")
            if type(count) is int and count >= 0:
                missed = count
        except (ValueError, KeyError, TypeError):
            last_event_id, reason = "", "unknown"
        self._metrics.record_gap(missed)
        return ReportGap(last_event_id=last_event_id, reason=reason, missed=missed)
