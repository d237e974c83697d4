"""Smoke test of benchmarks/bench_protocol.py: generators, contenders and checks at tiny sizes.

No timing is asserted; this keeps the benchmark's correctness machinery from rotting.
"""

from __future__ import annotations

import pytest

for _peer in ("httpx", "httpx_sse", "sseclient", "ld_eventsource", "sse_starlette"):
    pytest.importorskip(_peer, reason=f"benchmark peer {_peer} is not installed (bench extra)")

import httpx  # noqa: E402
from httpx_sse import EventSource  # noqa: E402

from benchmarks import bench_protocol as bench  # noqa: E402
from sse_core import Comment, Event, Parser, Retry  # noqa: E402

SIZES = {"llm": 300, "chat": 300, "big": 5, "chat-crlf": 300}


@pytest.fixture(scope="module", params=list(bench.WORKLOADS))
def workload(request: pytest.FixtureRequest) -> bench.Workload:
    make = bench.WORKLOADS[request.param][0]
    return make(SIZES[request.param])


def outputs_for(chunks: list[bytes]) -> dict[str, list[object]]:
    return {contender.name: contender.run(chunks) for contender in bench.CONTENDERS}


def test_generators_are_deterministic(workload: bench.Workload) -> None:
    """The same size and seed give the same bytes and the same expected items."""
    again = bench.WORKLOADS[workload.name][0](SIZES[workload.name])
    assert again.body == workload.body
    assert again.expected == workload.expected


def test_expected_items_match_the_serializer_and_parser_law(workload: bench.Workload) -> None:
    """sse_core fed the whole body at once gives the expected items and a clean end."""
    parser = Parser()
    items = parser.feed(workload.body)
    assert not parser.feed_eof().is_truncated
    assert items == workload.expected
    assert len(workload.events) == SIZES[workload.name]


@pytest.mark.parametrize("feeding", list(bench.FEEDINGS))
def test_sse_core_is_exact_and_agreement_runs(workload: bench.Workload, feeding: str) -> None:
    """sse_core gives exactly the expected items in every feeding; peers are classified."""
    chunks = bench.FEEDINGS[feeding](workload.body)
    assert b"".join(chunks) == workload.body
    is_exact, agreeing, deviations = bench.check_agreement(workload, outputs_for(chunks))
    assert is_exact
    names = set(agreeing) | {d.peer for d in deviations}
    assert names == {"httpx-sse", "sseclient-py", "ld-eventsource"}
    assert "ld-eventsource" in agreeing
    for deviation in deviations:
        assert deviation.describe().startswith(f"peer {deviation.peer} deviates: ")


def test_httpx_sse_deviation_on_retry_and_heartbeats_is_reported() -> None:
    """httpx-sse dispatches an empty event for the retry-only block and each later heartbeat."""
    chat = bench.make_chat(400)
    _, agreeing, deviations = bench.check_agreement(chat, outputs_for([chat.body]))
    assert "httpx-sse" not in agreeing
    (deviation,) = [d for d in deviations if d.peer == "httpx-sse"]
    n_heartbeats = sum(type(item) is Comment for item in chat.expected)
    assert deviation.n_extra == n_heartbeats + 1  # each ping after an id, plus the retry block
    assert deviation.n_missing == 0
    assert deviation.example_extra is not None
    assert deviation.example_extra[1][1] == ""  # the extra events carry empty data


def test_a_wrong_parser_output_is_detected() -> None:
    """check_agreement reports sse_core as wrong when one item differs."""
    llm = bench.make_llm(50)
    outputs = outputs_for([llm.body])
    outputs["sse_core"] = [*outputs["sse_core"][:-1], Event(data="tampered")]
    is_exact, _, _ = bench.check_agreement(llm, outputs)
    assert not is_exact


def test_compare_events_reports_missing_and_order() -> None:
    """A dropped event counts as missing; a swap counts as out of order."""
    a = ("message", "a", None, "")
    c = ("message", "c", None, "")
    dropped = bench.compare_events("p", [a, c], [a])
    assert dropped is not None and (dropped.n_missing, dropped.n_extra) == (1, 0)
    swapped = bench.compare_events("p", [a, c], [c, a])
    assert swapped is not None and swapped.n_misplaced == 2
    assert bench.compare_events("p", [a, c], [a, c]) is None


def test_httpx_mirror_matches_the_real_event_source() -> None:
    """The benchmark's httpx-sse pipeline yields what EventSource.iter_sse does on a response."""
    chat = bench.make_chat_crlf(200)
    chunks = bench.chunks_random(chat.body, max_size=97)
    response = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=iter(chunks)
    )
    real = [(e.event, e.data, e.id, e.retry) for e in EventSource(response).iter_sse()]
    mirror = [(e.event, e.data, e.id, e.retry) for e in bench.run_httpx_sse(chunks)]
    assert mirror == real


def test_main_quick_parts_run(capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """main() runs the serializer and linearity parts at tiny sizes and exits 0."""
    monkeypatch.setitem(bench.WORKLOADS, "llm", (bench.make_llm, 200, 200))
    monkeypatch.setitem(bench.WORKLOADS, "chat", (bench.make_chat, 200, 200))
    monkeypatch.setattr(bench, "bench_linearity",
                        lambda small, out, runs=1: (True, "linearity: skipped in the smoke test"))
    assert bench.main(["--quick", "--workload", "chat", "--workload", "serialize",
                       "--workload", "linearity"]) == 0
    printed = capsys.readouterr().out
    assert "chat: sse_core vs fastest peer:" in printed
    assert "sse_core serializer vs sse-starlette:" in printed
    assert "peer httpx-sse deviates:" in printed


def test_long_line_is_parsed_whole() -> None:
    """The linearity probe's line comes back as one event of the right length."""
    _, n_data = bench.feed_long_line(3000)
    assert n_data == 3000 - 6


def test_retry_and_comments_are_in_the_chat_stream() -> None:
    """The chat workload holds the retry-only block and heartbeats it promises."""
    chat = bench.make_chat(400)
    assert chat.expected[0] == Retry(milliseconds=3000)
    assert any(type(item) is Comment for item in chat.expected)
    assert chat.body.startswith(b"retry: 3000\n\n")
