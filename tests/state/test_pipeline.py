"""Tests for sse_core._pipeline.DeliveryPipeline: one batch per input is the same as one
event at a time, and an input's events go out as runs."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from sse_core import Deliver, DeliverBatch, Event
from sse_core._actions import GAP_EVENT_TYPE, POSITION_EVENT_TYPE, Action
from sse_core._batching import one_per_event
from sse_core._chunking import ChunkConfig
from sse_core._dedup import DedupConfig
from sse_core._metrics import MetricsRecorder
from sse_core._pipeline import DeliveryPipeline
from sse_core._sequencer import SequencerConfig

GAP_DATA = json.dumps({"last_event_id": "3", "reason": "too_old"})

# Ids from a small set (repeats are common), numbered or not; the two event types the
# pipeline acts on itself; plain events without ids.
events = st.one_of(
    st.builds(Event, data=st.sampled_from(["a", "b"]),
              id=st.sampled_from(["1", "2", "3", "5", "x", ""]).map(lambda i: i or None)),
    st.builds(Event, data=st.just(GAP_DATA), event=st.just(GAP_EVENT_TYPE)),
    st.builds(Event, data=st.just(""), event=st.just(POSITION_EVENT_TYPE), id=st.just("9")),
)
# Inputs (each a list of events) at times that never go back.
inputs = st.lists(st.tuples(st.lists(events, max_size=6), st.floats(0, 2)), max_size=8)
stages = st.fixed_dictionaries({
    "dedup": st.sampled_from([None, DedupConfig(max_ids=3), DedupConfig(max_age=1.0)]),
    "sequencer": st.sampled_from([None, SequencerConfig(gap_timeout=0.5)]),
    "chunking": st.sampled_from([None, ChunkConfig()]),
})


def run(feeding: list[tuple[list[Event], float]], config: dict[str, object], *, one_by_one: bool
        ) -> tuple[list[Action], tuple[int, int, int]]:
    metrics = MetricsRecorder()
    pipeline = DeliveryPipeline(metrics=metrics, **config)  # type: ignore[arg-type]
    actions: list[Action] = []
    now = 0.0
    for batch, step in feeding:
        now += step
        if one_by_one:
            for event in batch:
                pipeline.push([event], now, actions)
        else:
            pipeline.push(batch, now, actions)
    counts = (metrics.messages_received, metrics.messages_deduplicated, metrics.gaps_reported)
    return actions, counts


@given(inputs, stages)
def test_a_batch_is_the_same_as_its_events_one_at_a_time(
    feeding: list[tuple[list[Event], float]], config: dict[str, object]
) -> None:
    """Whatever the events, times and stages on, pushing each input's events as one batch
    gives the same actions, in the same order, and the same counters as pushing them one by
    one (the batch is a data shape, not a change of meaning): the same events delivered, in
    the same runs' order, with the same reports between them."""
    batched, batched_counts = run(feeding, config, one_by_one=False)
    single, single_counts = run(feeding, config, one_by_one=True)
    assert one_per_event(batched) == one_per_event(single)
    assert batched_counts == single_counts


def test_counters_follow_the_batch() -> None:
    """A batch with a duplicate and a gap signal in it: two delivered, one dropped as a
    duplicate, one gap counted; the actions keep the stream's order."""
    batch = [Event(data="a", id="1"), Event(data="a", id="1"),
             Event(data=GAP_DATA, event=GAP_EVENT_TYPE), Event(data="b", id="2")]
    actions, counts = run([(batch, 0.0)], {"dedup": DedupConfig(), "sequencer": None,
                                            "chunking": None}, one_by_one=False)
    assert counts == (2, 1, 1)
    assert [type(action).__name__ for action in actions] == ["DeliverBatch", "ReportGap",
                                                            "DeliverBatch"]
    assert actions[0] == DeliverBatch(events=[Event(data="a", id="1")])
    assert actions[2] == DeliverBatch(events=[Event(data="b", id="2")])


def test_an_input_goes_out_as_one_run() -> None:
    """Without a report among them, an input's events go out as one DeliverBatch (the
    duplicates dropped), not a Deliver each; with the sequencer on, each event's fate is
    its own decision and each goes out as a Deliver."""
    batch = [Event(data="a", id="1"), Event(data="b"), Event(data="a", id="1"),
             Event(data="c", id="2")]
    actions, counts = run([(batch, 0.0)], {"dedup": DedupConfig(), "sequencer": None,
                                            "chunking": None}, one_by_one=False)
    assert actions == [DeliverBatch(events=[batch[0], batch[1], batch[3]])]
    assert counts == (3, 1, 0)
    ordered, _ = run([(batch, 0.0)], {"dedup": DedupConfig(),
                                      "sequencer": SequencerConfig(gap_timeout=0.5),
                                      "chunking": None}, one_by_one=False)
    assert ordered == [Deliver(event=event) for event in (batch[0], batch[1], batch[3])]
