"""Tests for sse_core._batching.Batcher, and ClientConfig.batching on a session."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sse_core import (
    ClientConfig,
    ClientSession,
    ClientState,
    Connect,
    Deliver,
    DeliverBatch,
    Disconnect,
    Event,
    InvalidConfigError,
    ReportGap,
    ReportStatus,
    Request,
    serialize_event,
)
from sse_core._actions import Action
from sse_core._batching import one_per_event
from sse_core.state import GAP_EVENT_TYPE, BatchConfig, Batcher

REQUEST = Request(method="GET", url="https://example.test/", headers=(), body=None)
# An input's actions: events (one by one, or a session's run of them), a report the
# application sees, or I/O for the adapter.
actions = st.lists(st.one_of(
    st.integers(0, 999).map(lambda n: Deliver(event=Event(data=str(n)))),
    st.lists(st.integers(0, 999), min_size=1, max_size=9).map(
        lambda ns: DeliverBatch(events=[Event(data=str(n)) for n in ns])),
    st.just(ReportGap(reason="too_old")),
    st.just(ReportStatus(state=ClientState.RECONNECTING, since=0.0)),
    st.just(Disconnect(reason="x")),
    st.just(Connect(request=REQUEST)),
), max_size=12)
configs = st.builds(BatchConfig, max_events=st.integers(1, 6),
                    max_delay=st.sampled_from([0.0, 0.01, 0.5, 3.0]))


@given(configs, st.lists(st.tuples(actions, st.floats(0.0, 2.0)), max_size=10))
def test_batches_are_the_deliveries_in_order_and_in_time(
    config: BatchConfig, inputs: list[tuple[list[Action], float]]
) -> None:
    """For any inputs (runs of events among them) and timing, woken at each deadline: what
    the application sees (the batches flattened, and the reports) is exactly the inputs' in
    order, and so is the I/O
    (which may go before events still pending); no batch is empty or larger than
    max_events; every event goes out at most max_delay after it arrived."""
    batcher = Batcher(config)
    now, fed, out = 0.0, [], []
    arrived: dict[int, float] = {}  # id(event) -> when it arrived
    went: dict[int, float] = {}
    for step_actions, step in inputs:
        later = now + step
        while (deadline := batcher.next_deadline()) is not None and deadline <= later:
            now = max(now, deadline)
            for action in batcher.poll(now):
                out.append(action)
                went.update({id(e): now for e in action.events})  # type: ignore[union-attr]
        now = later
        for action in step_actions:
            if isinstance(action, Deliver):
                arrived[id(action.event)] = now
            elif isinstance(action, DeliverBatch):
                arrived.update({id(e): now for e in action.events})
        fed += step_actions
        for action in batcher.feed(list(step_actions), now):
            out.append(action)
            if isinstance(action, DeliverBatch):
                went.update({id(e): now for e in action.events})
    now += 1000.0
    out += batcher.poll(now)
    for action in out:
        if isinstance(action, DeliverBatch):
            assert 1 <= len(action.events) <= config.max_events
            for event in action.events:
                went.setdefault(id(event), now)
    def is_io(action: Action) -> bool:
        return isinstance(action, (Connect, Disconnect))

    seen, sent = one_per_event(out), one_per_event(fed)
    assert [a for a in seen if not is_io(a)] == [a for a in sent if not is_io(a)]
    assert [a for a in out if is_io(a)] == [a for a in fed if is_io(a)]
    for key, at in arrived.items():
        if went[key] != now:  # the final poll aside
            assert went[key] - at <= config.max_delay + 1e-9


def test_a_report_lets_the_pending_batch_out_first() -> None:
    """Two events pending, then a gap report: the batch of two, then the gap."""
    batcher = Batcher(BatchConfig(max_events=5, max_delay=1.0))
    first = [Deliver(event=Event(data="a")), Deliver(event=Event(data="b"))]
    assert batcher.feed(first, 0.0) == []
    assert batcher.next_deadline() == 1.0 and batcher.pending == 2
    gap = ReportGap(reason="too_old")
    assert batcher.feed([gap], 0.5) == [DeliverBatch(events=[Event(data="a"), Event(data="b")]),
                                        gap]
    assert batcher.next_deadline() is None


def test_a_full_batch_goes_out_at_once_and_zero_delay_batches_each_input() -> None:
    """max_events reached: out at once. max_delay 0: each input's events are one batch."""
    full = Batcher(BatchConfig(max_events=2, max_delay=5.0))
    out = full.feed([Deliver(event=Event(data=str(n))) for n in range(5)], 0.0)
    assert [len(batch.events) for batch in out] == [2, 2]  # type: ignore[union-attr]
    assert full.pending == 1
    each = Batcher(BatchConfig(max_events=100, max_delay=0.0))
    out = each.feed([Deliver(event=Event(data=str(n))) for n in range(5)], 0.0)
    assert [len(batch.events) for batch in out] == [5]  # type: ignore[union-attr]


def test_a_run_is_split_at_max_events() -> None:
    """A session's run of 7 events onto 1 pending, max_events 3: batches of 3, 3, and 2
    left pending, in order."""
    batcher = Batcher(BatchConfig(max_events=3, max_delay=5.0))
    assert batcher.feed([Deliver(event=Event(data="0"))], 0.0) == []
    run = DeliverBatch(events=[Event(data=str(n)) for n in range(1, 8)])
    out = batcher.feed([run], 1.0)
    assert [[e.data for e in batch.events] for batch in out] == [  # type: ignore[union-attr]
        ["0", "1", "2"], ["3", "4", "5"]]
    assert batcher.pending == 2 and batcher.next_deadline() == 6.0


@pytest.mark.parametrize("kwargs", [{"max_events": 0}, {"max_delay": -1.0},
                                    {"max_delay": float("nan")}, {"max_events": 1.5}])
def test_config_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidConfigError):
        BatchConfig(**kwargs)  # type: ignore[arg-type]


# --- on a session --------------------------------------------------------------------------

HEADERS = [("Content-Type", "text/event-stream")]


def delivered(out: list[Action]) -> list[str]:
    return [action.event.data for action in one_per_event(out) if isinstance(action, Deliver)]


@given(
    st.lists(st.tuples(st.lists(st.integers(0, 3), max_size=6), st.floats(0.0, 1.0),
                       st.booleans()), max_size=12),
    configs,
)
def test_a_batching_session_delivers_what_a_plain_one_does(
    steps: list[tuple[list[int], float, bool]], config: BatchConfig
) -> None:
    """The same bytes at the same times (woken at every deadline): the batches of a session
    with batching, concatenated, are the events a session without it delivers, in order;
    ids repeat (dedup on), and the stream is sometimes cut (reconnections). A session made
    with ``is_batched_per_input`` gives the plain session's actions exactly, but with each
    input's events as one DeliverBatch; with batching on, the flag changes nothing."""
    plain_config = ClientConfig(url="https://example.test/")
    batched_config = ClientConfig(url="https://example.test/", batching=config)
    sessions = {
        "plain": ClientSession(plain_config, rng=random.Random(1)),
        "runs": ClientSession(plain_config, rng=random.Random(1), is_batched_per_input=True),
        "batched": ClientSession(batched_config, rng=random.Random(1)),
        "batched runs": ClientSession(batched_config, rng=random.Random(1),
                                      is_batched_per_input=True),
    }
    got: dict[str, list[Action]] = {name: [] for name in sessions}
    now = 0.0
    for name, client in sessions.items():
        now = 0.0
        got[name] += client.start(now)
        got[name] += client.on_response(200, HEADERS, now)
        for ids, step, is_cut in steps:
            target = now + step
            while (deadline := client.next_deadline()) is not None and deadline <= target:
                now = max(now, deadline)
                got[name] += client.on_timer(now)
                if client.state is ClientState.CONNECTING:
                    got[name] += client.on_response(200, HEADERS, now)
            now = target
            if client.state not in (ClientState.CONNECTED, ClientState.STREAMING):
                continue
            data = b"".join(serialize_event(f"e{n}", id=str(n)) for n in ids)
            got[name] += client.on_data(data, now) if data else []
            if is_cut:
                got[name] += client.on_connection_lost(now)
        got[name] += client.close(now + 100.0)
    assert delivered(got["batched"]) == delivered(got["plain"])
    assert not any(isinstance(a, Deliver) for a in got["batched"])
    assert got["batched runs"] == got["batched"]
    assert one_per_event(got["runs"]) == got["plain"]
    assert not any(isinstance(a, DeliverBatch) for a in got["plain"])
    assert not any(isinstance(a, Deliver) for a in got["runs"])


def test_a_session_batched_per_input_hands_out_one_record_per_input() -> None:
    """``is_batched_per_input``: three events in one input are one DeliverBatch (a plain
    session gives three Deliver records); a gap signal between events splits the run
    around its ReportGap; the flag must be a bool."""
    body = b"".join(serialize_event(f"e{n}", id=str(n)) for n in range(3))
    sessions = [ClientSession(ClientConfig(url="https://example.test/"), rng=random.Random(1),
                              is_batched_per_input=flag) for flag in (False, True)]
    for client in sessions:
        client.start(0.0)
        client.on_response(200, HEADERS, 0.0)
    plain, runs = (client.on_data(body, 1.0) for client in sessions)
    assert [type(a).__name__ for a in plain] == ["ReportStatus"] + ["Deliver"] * 3
    events = [Event(data=f"e{n}", id=str(n), last_event_id=str(n)) for n in range(3)]
    assert runs[1:] == [DeliverBatch(events=events)]
    gap = serialize_event('{"last_event_id": "2", "reason": "too_old"}', event=GAP_EVENT_TYPE)
    split = sessions[1].on_data(serialize_event("a") + gap + serialize_event("b"), 2.0)
    assert [type(a).__name__ for a in split] == ["DeliverBatch", "ReportGap", "DeliverBatch"]
    with pytest.raises(InvalidConfigError):
        ClientSession(ClientConfig(url="https://example.test/"), rng=random.Random(1),
                      is_batched_per_input=1)  # type: ignore[arg-type]
