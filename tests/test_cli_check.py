"""``sse-core check``: the checks on hand-made observations, then the whole command (run as
``python -m sse_core._cli check URL --json``) against real servers.

- sse_core's own servers -- the asyncio, trio and blocking ``EventStreamServer`` (a replay
  log, heartbeats), the ASGI broadcast app and the per-request ``StreamResponse`` under
  uvicorn -- pass every item.
- Deliberately broken local servers (:class:`RawServer`, raw asyncio sockets) each fail the
  item they break and no other.
- Peers nobody here wrote -- sse-starlette under uvicorn, aiohttp-sse, better-sse (Node) --
  get the findings they earn, asserted one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sse_core import Event, ServerConfig
from sse_core._cli._check_judge import CHECKS, judge, resume_point
from sse_core._cli._check_records import (
    Arrival,
    End,
    Finding,
    Level,
    Observation,
    Report,
    Response,
)
from sse_core.adapters import ServerOptions
from sse_core.adapters.asyncio import EventStreamServer
from sse_core.state import ReplayLog
from tests._processes import stop

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "tests" / "peers" / "node"
#: Seconds any wait for a server may take; only a failure waits this long.
TIMEOUT = 30.0
#: The bound given to each check run against a server.
DURATION = 8.0

# --- the checks, on hand-made observations ----------------------------------------------------

GOOD_HEAD = (
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
    ("transfer-encoding", "chunked"),
)


def response(
    *chunks: tuple[float, bytes],
    headers: tuple[tuple[str, str], ...] = GOOD_HEAD,
    status: int = 200,
    end: End = End.STOPPED,
    observed: float = 4.0,
) -> Response:
    """A 200 (by default) with the given body reads ``(at, bytes)``."""
    return Response(
        status=status, reason="OK", headers=headers, head_at=0.001, end=end, observed=observed,
        arrivals=tuple(Arrival(at=at, size=len(data), data=data) for at, data in chunks),
    )


def ticks(
    first: int, last: int, start: float = 0.01, step: float = 0.2
) -> list[tuple[float, bytes]]:
    """Events ``first..last`` with ids, one read each, every ``step`` seconds."""
    return [
        (start + step * index, b"id: %d\ndata: tick %d\n\n" % (number, number))
        for index, number in enumerate(range(first, last + 1))
    ]


GOOD_MAIN = response((0.005, b"retry: 2000\n\n"), *ticks(1, 10), (2.2, b": ping\n\n"),
                     observed=2.3)


def observe(main: Response = GOOD_MAIN, **kwargs: Any) -> Observation:
    """An observation of ``main``; by default a good resumption and unknown-id answer."""
    point = resume_point(main) if main.status == 200 else None
    kwargs.setdefault("resumed", response(*ticks(9, 11), observed=0.7))
    kwargs.setdefault("unknown", response(*ticks(12, 12), observed=0.3))
    kwargs.setdefault("head", Response(method="HEAD", status=405, reason="Method Not Allowed",
                                       end=End.CLOSED))
    return Observation(url="http://test/events", duration=8.0, main=main, resumed_from=point,
                       **kwargs)


def failing(findings: tuple[Finding, ...]) -> dict[str, Level]:
    """The items that did not pass (warnings and failures), by id."""
    return {f.id: f.level for f in findings if f.level in (Level.WARN, Level.FAIL)}


def test_a_good_observation_passes_every_judged_item() -> None:
    """Good head, prompt bytes, retry, ordered ids, a clean resumption: nothing warns; the
    items with nothing to judge (no close, no origin) are skipped, not passed."""
    findings = judge(observe())
    assert [f.id for f in findings] == [check.__name__[6:].replace("_", "-")
                                        .replace("accel-buffering", "x-accel-buffering")
                                        for check in CHECKS]
    assert failing(findings) == {}
    assert {f.id for f in findings if f.level is Level.SKIP} == {"truncated", "cors"}


@pytest.mark.parametrize(
    ("headers", "item", "level"),
    [
        ((("content-type", "text/plain"),), "content-type", Level.FAIL),
        ((("content-type", "text/event-stream; charset=latin-1"),), "content-type", Level.WARN),
        ((("cache-control", "max-age=60"),), "cache-control", Level.WARN),
        ((("x-accel-buffering", "yes"),), "x-accel-buffering", Level.WARN),
        ((("content-length", "999"),), "content-length", Level.FAIL),
        ((("transfer-encoding", "identity"),), "framing", Level.WARN),
        ((("content-encoding", "br"),), "compression", Level.FAIL),
    ],
)
def test_a_bad_header_field_fails_its_item_only(
    headers: tuple[tuple[str, str], ...], item: str, level: Level
) -> None:
    """Each wrong header field (replacing the good one) draws its own item's verdict and
    leaves every other item alone."""
    names = {name for name, _ in headers}
    head = tuple(field for field in GOOD_HEAD if field[0] not in names) + headers
    error = "decoding the body: cannot decode" if item == "compression" else None
    main = GOOD_MAIN
    main = Response(status=200, headers=head, arrivals=main.arrivals, observed=main.observed,
                    error=error)
    assert failing(judge(observe(main))) == {item: level}


def test_statuses() -> None:
    """No answer and a 500 fail; a 204 warns (EventSource stops for good); the stream
    items are then not judged."""
    no_answer = Response(end=End.FAILED, error="cannot connect")
    findings = judge(observe(no_answer, resumed=None, unknown=None))
    assert failing(findings) == {"status": Level.FAIL}
    assert failing(judge(observe(response(status=500), resumed=None))) == {"status": Level.FAIL}
    assert failing(judge(observe(response(status=204), resumed=None))) == {"status": Level.WARN}


def test_a_late_first_byte_then_a_burst_is_a_buffer() -> None:
    """Nothing for 2 s, then ten events at once: a buffer in front (fail, with the header
    advice); compressed, the same is blamed on the compressor; late without a burst warns."""
    burst = b"retry: 2000\n\n" + b"".join(data for _, data in ticks(1, 10))
    buffered = response((2.0, burst), (2.3, b": ping\n\n"), observed=2.5)
    findings = judge(observe(buffered))
    assert failing(findings) == {"first-byte": Level.FAIL}
    assert "X-Accel-Buffering" in next(f.fix for f in findings if f.id == "first-byte")
    gzip = response((2.0, burst), (2.3, b": ping\n\n"), observed=2.5,
                    headers=(*GOOD_HEAD, ("content-encoding", "gzip")))
    assert failing(judge(observe(gzip))) == {"compression": Level.FAIL}
    late = response((1.5, b"retry: 2000\n\n"), *ticks(1, 10, start=1.6), observed=3.7)
    assert failing(judge(observe(late))) == {"first-byte": Level.WARN}


def gzip_reads(*reads: tuple[float, bytes, bool]) -> Response:
    """A gzip-compressed 200 read by read: ``(at, decoded bytes, is_flushed)``."""
    return Response(
        status=200, reason="OK", headers=(*GOOD_HEAD, ("content-encoding", "gzip")),
        head_at=0.001, observed=4.0,
        arrivals=tuple(Arrival(at=at, size=10 + len(data), data=data, is_flushed=flushed)
                       for at, data, flushed in reads),
    )


def test_compressed_bytes_waiting_for_a_flush_fail_compression_only() -> None:
    """The gzip header at once, then the events only at a flush 1.7 s later: the compressor
    held them (a fail, even though the first byte was prompt); bytes held to the end: the
    body items are not judged (see compression) instead of failing on what was held; a read
    cut by the network and completed 10 ms later is no hold."""
    events = b"retry: 2000\n\n" + b"".join(data for _, data in ticks(1, 10))
    batched = gzip_reads((0.01, b"", False), (1.7, events, True), (2.5, b": ping\n\n", True))
    findings = judge(observe(batched))
    assert failing(findings) == {"compression": Level.FAIL}
    compression = next(f for f in findings if f.id == "compression")
    assert "decodable only at the flush at 1.70 s" in compression.evidence
    assert next(f for f in findings if f.id == "first-byte").summary == ("held back: see "
                                                                          "compression")
    held = gzip_reads((0.01, b"", False))
    findings = judge(observe(held, resumed=None))
    assert failing(findings) == {"compression": Level.FAIL}
    assert "no flush by 4.00 s" in next(f for f in findings if f.id == "compression").evidence
    assert {f.id for f in findings if "held in the compressor" in f.summary} == {
        "heartbeat", "retry", "ids", "resumption", "line-endings", "ignored-lines",
        "truncated", "line-length"}
    split = gzip_reads((0.01, events[:30], False), (0.02, events[30:], True),
                       (0.5, b": ping\n\n", True))
    assert failing(judge(observe(split))) == {}


def test_heartbeat_silences_against_the_idle_timeout() -> None:
    """The longest silence (trailing included) over the idle timeout fails; over half of it
    warns; a short trailing silence with no comment seen is 'not seen within the duration'."""
    quiet = response((0.01, b"retry: 2000\n\n"), *ticks(1, 3), observed=40.0)
    finding = next(f for f in judge(observe(quiet, resumed=None)) if f.id == "heartbeat")
    assert finding.level is Level.FAIL and "30 s idle timeout" in finding.summary
    warned = response((0.01, b"retry: 2000\n\n"), *ticks(1, 3), (20.0, b":\n\n"), observed=20.1)
    assert failing(judge(observe(warned, resumed=None))) == {"heartbeat": Level.WARN}
    short = response((0.01, b"retry: 2000\n\n"), *ticks(1, 3), observed=5.0)
    finding = next(f for f in judge(observe(short, resumed=None)) if f.id == "heartbeat")
    assert finding.level is Level.SKIP and "not seen within the duration" in finding.summary


def test_retry_missing_or_low_warns() -> None:
    """No retry field warns; one under a second warns; otherwise its value is reported."""
    bare = response(*ticks(1, 10), observed=2.1)
    assert failing(judge(observe(bare))) == {"retry": Level.WARN}
    low = response((0.005, b"retry: 50\n\n"), *ticks(1, 10), observed=2.1)
    assert failing(judge(observe(low))) == {"retry": Level.WARN}


@pytest.mark.parametrize(
    ("body", "summary"),
    [
        (b"data: a\n\ndata: b\n\n", "none of 2 events has an id"),
        (b"id: 1\ndata: a\n\ndata: b\n\n", "1 of 2 events have no id"),
        (b"id: 2\ndata: a\n\nid: 1\ndata: b\n\nid: 3\ndata: c\n\n", "do not increase"),
        (b"id: 1\ndata: a\n\nid: 1\ndata: b\n\n", "used twice"),
    ],
)
def test_ids_missing_unordered_or_repeated_warn(body: bytes, summary: str) -> None:
    """Events without ids, numeric ids that go back, an id used twice: each warns."""
    main = response((0.01, b"retry: 2000\n\n" + body), observed=0.2)
    finding = next(f for f in judge(observe(main, resumed=None)) if f.id == "ids")
    assert finding.level is Level.WARN and summary in finding.summary


@pytest.mark.parametrize(
    ("resumed_ids", "level", "summary"),
    [
        ((9, 11), Level.PASS, "continued with the 2 events after it"),
        ((1, 4), Level.FAIL, "starts over from the first event"),
        ((8, 11), Level.FAIL, "sends event 8 again"),
        ((7, 11), Level.FAIL, "repeats 2 events"),
        ((13, 15), Level.FAIL, "misses 2 of the 2 events"),
        ((10, 12), Level.FAIL, "misses 1 of the 2 events"),
        ((9, 9), Level.SKIP, "saw 1 of the 2 events"),
    ],
)
def test_resumption_verdicts(resumed_ids: tuple[int, int], level: Level, summary: str) -> None:
    """Resuming from id 8 of ten: the right continuation passes; starting over, the named
    event again, older events, and skipped events fail, each saying which; a reconnection cut
    short before it could show everything is not judged."""
    resumed = response(*ticks(*resumed_ids), observed=0.7)
    observation = observe(resumed=resumed)
    assert observation.resumed_from == "8"
    finding = next(f for f in judge(observation) if f.id == "resumption")
    assert (finding.level, summary in finding.summary) == (level, True), finding


def test_unknown_id_answers() -> None:
    """An unknown Last-Event-ID answered 200 passes, 204 warns, an error status fails."""
    for status, level in ((204, Level.WARN), (404, Level.FAIL)):
        unknown = response(status=status)
        assert failing(judge(observe(unknown=unknown))) == {"unknown-id": level}


@pytest.mark.parametrize(
    ("extra", "item", "level"),
    [
        (b"id: 1\r\ndata: crlf\r\n\r\n", "line-endings", Level.WARN),
        (b"id: 1\ndata: x\nfoo: bar\n\n", "ignored-lines", Level.WARN),
        (b"event: only\n\n", "ignored-lines", Level.WARN),
        (b"id: 1\ndata: x\nretry: soon\n\n", "ignored-lines", Level.WARN),
        (b"id: 1\ndata: " + b"x" * 70_000 + b"\n\n", "line-length", Level.WARN),
    ],
)
def test_wire_hygiene(extra: bytes, item: str, level: Level) -> None:
    """Mixed line endings, unknown fields, a block with no data, a bad retry and a very long
    line each draw their own item."""
    main = response((0.005, b"retry: 2000\n\n"), (0.006, extra), *ticks(2, 10), observed=2.2)
    assert failing(judge(observe(main))) == {item: level}


def test_a_bom_warns() -> None:
    """A byte order mark at the start warns (browsers skip it, other clients may not)."""
    main = response((0.005, b"\xef\xbb\xbfretry: 2000\n\n"), *ticks(1, 10), observed=2.1)
    assert failing(judge(observe(main))) == {"line-endings": Level.WARN}


def test_an_event_cut_at_close_is_never_dispatched() -> None:
    """A close inside an event fails; a close after complete events passes."""
    cut = response((0.005, b"retry: 2000\n\n"), *ticks(1, 10), (2.1, b"id: 11\ndata: hal"),
                   end=End.CLOSED, observed=2.1)
    assert failing(judge(observe(cut))) == {"truncated": Level.FAIL}
    whole = response((0.005, b"retry: 2000\n\n"), *ticks(1, 10), end=End.CLOSED, observed=2.1)
    finding = next(f for f in judge(observe(whole)) if f.id == "truncated")
    assert finding.level is Level.PASS


def test_cors_with_an_origin() -> None:
    """With --origin, a missing Access-Control-Allow-Origin fails; a refused preflight warns."""
    findings = judge(observe(origin="https://app.example"))
    assert failing(findings) == {"cors": Level.FAIL}
    head = (*GOOD_HEAD, ("access-control-allow-origin", "*"))
    main = response(*[(a.at, a.data) for a in GOOD_MAIN.arrivals], headers=head, observed=2.3)
    refused = Response(method="OPTIONS", status=405, end=End.CLOSED)
    findings = judge(observe(main, origin="https://app.example", options=refused))
    assert failing(findings) == {"cors": Level.WARN}


def test_report_score_exit_codes_and_renderings() -> None:
    """Exit 0 without failures (1 with --strict and a warning), 2 with a failure; the score
    counts a pass 2, a warning 1, a failure 0; text and JSON carry every finding."""
    findings = (
        Finding(id="a", level=Level.PASS, summary="fine"),
        Finding(id="b", level=Level.WARN, summary="hmm", evidence="x\ny", fix="do z"),
        Finding(id="c", level=Level.SKIP, summary="not judged"),
    )
    report = Report(url="http://test/", duration=5.0, findings=findings)
    assert (report.exit_code(is_strict=False), report.exit_code(is_strict=True)) == (0, 1)
    assert report.score == 75
    text = report.to_text()
    assert "WARN  b  hmm" in text and "fix:  do z" in text and "seen: x" in text
    document = json.loads(report.to_json(is_strict=True))
    assert document["exit_code"] == 1 and document["counts"]["skip"] == 1
    failed = Report(url="u", duration=1.0, findings=(*findings, Finding(
        id="d", level=Level.FAIL, summary="no")))
    assert failed.exit_code(is_strict=False) == 2


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(st.tuples(st.floats(0, 100), st.binary(max_size=200)), max_size=8),
    end=st.sampled_from(list(End)),
    resumed=st.lists(st.binary(max_size=100), max_size=3),
)
def test_any_body_gets_one_finding_per_item(
    chunks: list[tuple[float, bytes]], end: End, resumed: list[bytes]
) -> None:
    """Whatever bytes arrive, at whatever times, every check returns one finding with its
    own id and never raises."""
    main = response(*sorted(chunks), end=end, observed=101.0)
    again = response(*[(0.1, data) for data in resumed], end=end, observed=1.0)
    findings = judge(observe(main, resumed=again))
    assert len({f.id for f in findings}) == len(CHECKS)


# --- the command against real servers --------------------------------------------------------


def run_check(url: str, *args: str, duration: float = DURATION) -> tuple[int, dict[str, Any]]:
    """Run ``python -m sse_core._cli check URL --json``; its exit code and report."""
    done = subprocess.run(
        [sys.executable, "-m", "sse_core._cli", "check", url, "--json",
         "--duration", str(duration), *args],
        capture_output=True, timeout=duration + TIMEOUT, check=False, cwd=ROOT,
    )
    assert done.stderr == b"", done.stderr.decode()
    return done.returncode, json.loads(done.stdout)


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    """The items that did not pass or skip, by id, with their level."""
    return {f["id"]: f["level"] for f in report["findings"] if f["level"] in ("warn", "fail")}


def finding(report: dict[str, Any], item: str) -> dict[str, str]:
    """One item's finding."""
    found: dict[str, str] = next(f for f in report["findings"] if f["id"] == item)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the server did not start:\n{log.read_text()}")
        time.sleep(0.1)


@contextlib.contextmanager
def app_server(name: str, tmp_path: Path, *args: str, scheme: str = "http") -> Iterator[str]:
    """``tests/cli_check_apps.py NAME PORT ARGS`` as a subprocess; yields its events URL."""
    port = _free_port()
    log = tmp_path / f"{name}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "cli_check_apps.py"), name, str(port), *args],
            env=env, stdout=out, stderr=out,
        )
    try:
        _wait_for_port(port, process, log)
        yield f"{scheme}://127.0.0.1:{port}/events"
    finally:
        stop(process, TIMEOUT)


class LoopThread:
    """An asyncio loop in a thread of its own, for servers the test runs in-process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(TIMEOUT)

    def close(self) -> None:
        """Cancel what still runs on the loop, then stop the loop and its thread."""

        async def cancel_the_rest() -> None:
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(TIMEOUT)
        self.loop.close()


@contextlib.contextmanager
def asyncio_stream_server() -> Iterator[str]:
    """sse_core's asyncio EventStreamServer with a replay log, heartbeats and ``retry:``,
    an event published every 0.2 s."""
    thread = LoopThread()
    server = EventStreamServer(
        ReplayLog(), config=ServerConfig(heartbeat_interval=1.0, retry=1500),
        options=ServerOptions(path="/events"),
    )

    async def start() -> asyncio.Task[None]:
        await server.start(port=0)

        async def publish() -> None:
            number = 0
            while True:
                number += 1
                server.publish(Event(data=f"tick {number}"))
                await asyncio.sleep(0.2)

        return asyncio.get_running_loop().create_task(publish())

    task = thread.run(start())
    try:
        yield f"http://127.0.0.1:{server.address[1]}/events"
    finally:
        async def close() -> None:
            task.cancel()
            await server.aclose(grace=0.5)

        thread.run(close())
        thread.close()


def _ticks(publish: Callable[[Event], object], stop: threading.Event) -> threading.Thread:
    """A thread publishing ``tick N`` every 0.2 s until ``stop`` is set."""

    def run() -> None:
        number = 0
        while not stop.wait(0.2):
            number += 1
            publish(Event(data=f"tick {number}"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def sync_stream_server() -> Iterator[str]:
    """sse_core's blocking-sockets EventStreamServer (its own thread), configured as the
    asyncio one above."""
    from sse_core.adapters.sync import EventStreamServer as SyncServer

    server = SyncServer(ReplayLog(), config=ServerConfig(heartbeat_interval=1.0, retry=1500),
                        options=ServerOptions(path="/events"))
    stop = threading.Event()
    with server:  # started
        ticking = _ticks(server.publish, stop)
        try:
            yield f"http://127.0.0.1:{server.address[1]}/events"
        finally:
            stop.set()
            ticking.join(TIMEOUT)


@contextlib.contextmanager
def trio_stream_server() -> Iterator[str]:
    """sse_core's trio EventStreamServer, run by ``trio.run`` in a thread of its own,
    configured as the asyncio one above."""
    trio = pytest.importorskip("trio")
    from sse_core.adapters.trio import EventStreamServer as TrioServer

    address: list[tuple[str, int]] = []
    ready, stop = threading.Event(), threading.Event()

    async def main() -> None:
        server = TrioServer(ReplayLog(), config=ServerConfig(heartbeat_interval=1.0, retry=1500),
                            options=ServerOptions(path="/events"))
        async with server:
            address.append(server.address)
            ready.set()
            number = 0
            while not stop.is_set():
                await trio.sleep(0.2)
                number += 1
                server.publish(Event(data=f"tick {number}"))

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    try:
        assert ready.wait(TIMEOUT), "the trio server did not start"
        yield f"http://127.0.0.1:{address[0][1]}/events"
    finally:
        stop.set()
        thread.join(TIMEOUT)


@pytest.mark.parametrize("name", ["asyncio", "trio", "sync", "broadcast", "response"])
def test_sse_cores_own_servers_pass_every_item(name: str, tmp_path: Path) -> None:
    """sse_core's asyncio, trio and blocking servers, its ASGI broadcast app and its
    per-request response under uvicorn, configured as the docs advise, pass every judged
    item, even with --strict."""
    if name in ("broadcast", "response"):
        pytest.importorskip("uvicorn", reason="uvicorn is in the peers extra")
        pytest.importorskip("starlette", reason="starlette is in the peers extra")
    own = {"asyncio": asyncio_stream_server, "trio": trio_stream_server,
           "sync": sync_stream_server}
    serving = own[name]() if name in own else app_server(name, tmp_path)
    with serving as url:
        code, report = run_check(url, "--strict")
    assert verdicts(report) == {}, report
    assert code == 0
    assert finding(report, "resumption")["level"] == "pass"
    assert finding(report, "compression")["summary"] == "gzip, flushed per event"
    assert finding(report, "retry")["summary"] == "retry: 1500 ms"


@pytest.mark.parametrize("name", ["gzip-batched", "gzip-held"])
def test_a_compressor_that_does_not_flush_fails_compression_and_nothing_else(
    name: str, tmp_path: Path
) -> None:
    """The ASGI broadcast app behind a gzip layer (``tests/cli_check_apps.py``): flushing
    per event passes every item; flushing every 10th message, or only at the end, fails
    compression -- and every other item is judged as for the flushing layer, or not judged
    because of the compression (it says so)."""
    pytest.importorskip("uvicorn", reason="uvicorn is in the peers extra")
    with app_server("gzip-flushed", tmp_path) as url:
        flushed_code, flushed = run_check(url, "--strict")
    assert verdicts(flushed) == {}, flushed
    assert flushed_code == 0
    assert finding(flushed, "compression")["summary"] == "gzip, flushed per event"
    with app_server(name, tmp_path) as url:
        code, report = run_check(url, "--strict")
    assert verdicts(report) == {"compression": "fail"}, report
    assert code == 2
    assert "not flushed per event" in finding(report, "compression")["summary"]
    levels = {f["id"]: f["level"] for f in flushed["findings"]}
    changed = {f["id"]: f["summary"] for f in report["findings"]
               if f["id"] != "compression" and f["level"] != levels[f["id"]]}
    assert all("see compression" in summary for summary in changed.values()), changed
    assert "first-byte" in changed
    if name == "gzip-held":
        assert "retry" in changed and "ids" in changed


def test_http2_framing_verdicts() -> None:
    """Over HTTP/2 a stream has no chunked coding and passes framing; a connection-specific
    field (Transfer-Encoding, Connection...) makes the response malformed (RFC 9113 section
    8.2.2): framing fails; a Content-Length still makes it a fixed document."""
    h2_head = tuple(field for field in GOOD_HEAD if field[0] != "transfer-encoding")
    main = attrs.evolve(GOOD_MAIN, http_version="2", reason="", headers=h2_head)
    findings = judge(observe(main))
    assert failing(findings) == {}
    assert next(f for f in findings if f.id == "framing").summary.startswith("HTTP/2 DATA")
    assert next(f for f in findings if f.id == "status").evidence.startswith("HTTP/2 200\n")
    chunked = attrs.evolve(main, headers=GOOD_HEAD)
    findings = judge(observe(chunked))
    assert failing(findings) == {"framing": Level.FAIL}
    assert "transfer-encoding: chunked" in next(f for f in findings if f.id == "framing").evidence
    fixed = attrs.evolve(main, headers=(*h2_head, ("content-length", "90")))
    findings = judge(observe(fixed))
    assert failing(findings) == {"content-length": Level.FAIL}
    assert "RFC 9113" in next(f for f in findings if f.id == "content-length").summary


def test_http2_without_h2_is_a_usage_error() -> None:
    """``check --http2`` with h2 not importable exits 2 before any request, naming the
    package to install."""
    code = ("import sys; sys.modules['h2'] = None\n"
            "from sse_core._cli import main\n"
            "print(main(['check', 'http://127.0.0.1:1/events', '--http2']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT, check=False, cwd=ROOT)
    assert done.stdout == "2\n", done.stderr
    assert "--http2 needs h2 (pip install h2)" in done.stderr


def _h2_or_skip() -> None:
    pytest.importorskip("hypercorn", reason="hypercorn is in the peers extra")
    pytest.importorskip("h2", reason="h2 is in the peers extra")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_http2_probes_of_a_real_http2_server_pass_every_item(
    scheme: str, tmp_path: Path
) -> None:
    """``check --http2`` against sse_core's broadcast app under hypercorn, over h2c (prior
    knowledge) and over TLS (h2 chosen by ALPN, a private CA given with --cacert): every
    request is HTTP/2 and every judged item passes, framing as HTTP/2 DATA frames. Without
    --http2 the same TLS server is checked over HTTP/1.1 (chunked)."""
    _h2_or_skip()
    tls: list[str] = []
    options: list[str] = []
    if scheme == "https":
        trustme = pytest.importorskip("trustme", reason="trustme is in the peers extra")
        authority = trustme.CA()
        issued = authority.issue_cert("127.0.0.1")
        issued.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
        issued.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
        authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        tls = [str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")]
        options = ["--cacert", str(tmp_path / "ca.pem")]
    with app_server("broadcast-hypercorn", tmp_path, *tls, scheme=scheme) as url:
        code, report = run_check(url, "--http2", "--strict", *options)
        if scheme == "https":
            _, http1 = run_check(url, "--strict", *options)
    assert verdicts(report) == {}, report
    assert code == 0
    assert finding(report, "status")["evidence"].startswith("HTTP/2 200\n")
    assert finding(report, "framing")["summary"].startswith("HTTP/2 DATA frames")
    assert finding(report, "compression")["summary"] == "gzip, flushed per event"
    assert finding(report, "resumption")["level"] == "pass"
    if scheme == "https":
        assert verdicts(http1) == {}, http1
        assert finding(http1, "framing")["summary"] == "HTTP/1.1 chunked"


def test_http2_to_a_server_without_it_fails_status_with_the_reason(tmp_path: Path) -> None:
    """``--http2`` to servers that do not speak it: uvicorn over cleartext (no h2c) and
    sse_core's TLS server (its ALPN offers no h2) fail ``status`` with what went wrong --
    the check never falls back to HTTP/1.1 behind the user's back."""
    _h2_or_skip()
    pytest.importorskip("uvicorn", reason="uvicorn is in the peers extra")
    with app_server("broadcast", tmp_path) as url:
        code, report = run_check(url, "--http2", duration=3.0)
    assert (code, verdicts(report)) == (2, {"status": "fail"}), report
    assert finding(report, "status")["summary"].startswith("no response: ")
    trustme = pytest.importorskip("trustme", reason="trustme is in the peers extra")
    import ssl

    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    thread = LoopThread()
    server = EventStreamServer(config=ServerConfig(retry=1500))
    try:
        thread.run(server.start(port=0, ssl_context=context))
        url = f"https://127.0.0.1:{server.address[1]}/events"
        code, report = run_check(url, "--http2", "--cacert", str(tmp_path / "ca.pem"),
                                 duration=3.0)
    finally:
        thread.run(server.aclose(grace=0.0))
        thread.close()
    assert (code, verdicts(report)) == (2, {"status": "fail"}), report
    assert "did not agree to HTTP/2 (ALPN: none)" in finding(report, "status")["summary"]


# --- deliberately broken servers -------------------------------------------------------------


class RawServer:
    """An event stream written by hand on asyncio sockets, correct except for one ``flaw``.

    Correct: ``200``, ``text/event-stream``, ``no-cache``, ``X-Accel-Buffering: no``, chunked,
    ``Access-Control-Allow-Origin: *`` (and a preflight answered), ``retry: 1000``, an event
    with an increasing id every 0.1 s from a log, replayed after a known ``Last-Event-ID``, a
    heartbeat comment after 0.3 s of silence, ``405`` to ``HEAD``.

    Flaws: ``buffering`` (output held and flushed every 2 s), ``content-type``
    (``text/plain``), ``quiet`` (no heartbeats, and silence after three live events),
    ``ignores-id`` (no replay), ``duplicates`` (the replay starts at the named event itself).
    """

    TICK = 0.1
    FLUSH_EVERY = 2.0

    def __init__(self, flaw: str | None) -> None:
        self.flaw = flaw
        self.log: list[int] = []
        self.new = asyncio.Event()

    async def start(self) -> str:
        """Listen on a free loopback port; returns the URL."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._producer = asyncio.get_running_loop().create_task(self._produce())
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/events"

    async def aclose(self) -> None:
        """Stop producing and serving."""
        self._producer.cancel()
        self._server.close()

    async def _produce(self) -> None:
        while True:
            self.log.append(len(self.log) + 1)
            self.new.set()
            self.new = asyncio.Event()
            await asyncio.sleep(self.TICK)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._respond(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _respond(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method = request[0].split()[0]
        fields = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(":") for line in request[1:] if line)
        )
        if method == "HEAD":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            return
        if method == "OPTIONS":
            writer.write(b"HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: *\r\n"
                         b"Access-Control-Allow-Methods: GET\r\n"
                         b"Access-Control-Allow-Headers: last-event-id\r\n"
                         b"Connection: close\r\n\r\n")
            return
        kind = "text/plain" if self.flaw == "content-type" else "text/event-stream"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: %s; charset=utf-8\r\nCache-Control: no-cache\r\n"
            b"X-Accel-Buffering: no\r\nAccess-Control-Allow-Origin: *\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" % kind.encode()
        )
        held = bytearray()
        flushed_at = time.monotonic()

        async def send(data: bytes) -> None:
            nonlocal flushed_at
            held.extend(data)
            if not held:
                return
            if self.flaw == "buffering" and time.monotonic() - flushed_at < self.FLUSH_EVERY:
                return
            writer.write(b"%x\r\n%b\r\n" % (len(held), bytes(held)))
            held.clear()
            flushed_at = time.monotonic()
            await writer.drain()

        await send(b"retry: 1000\n\n")
        last = fields.get("last-event-id", "")
        sent = len(self.log)
        if last.isdigit() and int(last) <= len(self.log) and self.flaw != "ignores-id":
            sent = int(last) - (self.flaw == "duplicates")
        live = 0
        while True:
            while sent < len(self.log):
                sent += 1
                live += 1
                await send(b"id: %d\ndata: event %d\n\n" % (sent, sent))
            if self.flaw == "quiet" and live >= 3 and not last:
                await asyncio.sleep(3600)
            try:
                await asyncio.wait_for(self.new.wait(), 0.3)
            except asyncio.TimeoutError:
                if self.flaw != "quiet":
                    await send(b": heartbeat\n\n")
            if self.flaw == "buffering":
                await send(b"")


@contextlib.contextmanager
def raw_server(flaw: str | None) -> Iterator[str]:
    """A :class:`RawServer` on a loop in a thread; yields its URL."""
    thread = LoopThread()
    server = RawServer(flaw)
    try:
        yield thread.run(server.start())
    finally:
        thread.run(server.aclose())
        thread.close()


@pytest.mark.parametrize(
    ("flaw", "item"),
    [
        (None, None),
        ("buffering", "first-byte"),
        ("content-type", "content-type"),
        ("quiet", "heartbeat"),
        ("ignores-id", "resumption"),
        ("duplicates", "resumption"),
    ],
)
def test_a_broken_server_fails_the_item_it_breaks_and_no_other(
    flaw: str | None, item: str | None
) -> None:
    """Each flaw fails exactly its own item (with --origin, so CORS is judged too, and a
    3 s idle timeout, which the correct server's 0.3 s heartbeats meet); the correct server
    passes everything. Exit code 2 for a failure, 0 otherwise."""
    idle = "3" if flaw in (None, "quiet") else "30"
    with raw_server(flaw) as url:
        code, report = run_check(url, "--origin", "https://app.example", "--idle-timeout", idle,
                                 duration=10.0)
    expected = {item: "fail"} if item else {}
    assert verdicts(report) == expected, report
    assert code == (2 if item else 0)
    if flaw == "ignores-id":
        assert "no replay" in finding(report, "resumption")["summary"]
    if flaw == "duplicates":
        assert "again (the one named, off by one)" in finding(report, "resumption")["summary"]
    if flaw == "buffering":
        assert "a buffer" in finding(report, "first-byte")["summary"]


def test_text_report_and_bad_arguments() -> None:
    """Without --json the report is text, one line per item, then the score; a URL that is
    not http(s) exits 2 with a message on stderr; nothing listening is a failed status."""
    with raw_server(None) as url:
        done = subprocess.run([sys.executable, "-m", "sse_core._cli", "check", url,
                               "--duration", "4"], capture_output=True, timeout=TIMEOUT,
                              check=False, cwd=ROOT)
    text = done.stdout.decode()
    assert done.returncode == 0, text
    assert text.startswith(f"sse-core check {url} (within 4 s)")
    assert "PASS  content-type" in text and "\nscore " in text
    bad = subprocess.run([sys.executable, "-m", "sse_core._cli", "check", "ftp://x/"],
                         capture_output=True, timeout=TIMEOUT, check=False, cwd=ROOT)
    assert bad.returncode == 2 and b"not an http(s) URL" in bad.stderr
    code, report = run_check(f"http://127.0.0.1:{_free_port()}/events", duration=2.0)
    assert code == 2 and verdicts(report) == {"status": "fail"}


# --- peers nobody here wrote -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["sse-starlette", "aiohttp-sse"])
def test_python_peers_earn_their_findings(name: str, tmp_path: Path) -> None:
    """sse-starlette and aiohttp-sse, used as their docs show over a live feed with ids:
    the head is right (content type, no-cache, X-Accel-Buffering: no or not, chunked) but no
    ``retry:`` is sent and a reconnection with Last-Event-ID misses what came in between
    (neither keeps a replay log); exit code 2."""
    module = {"sse-starlette": "sse_starlette", "aiohttp-sse": "aiohttp_sse"}[name]
    pytest.importorskip(module, reason=f"{name} is in the peers extra")
    with app_server(name, tmp_path) as url:
        code, report = run_check(url)
    assert code == 2
    assert verdicts(report) == {"retry": "warn", "resumption": "fail"}, report
    assert "no replay" in finding(report, "resumption")["summary"]
    assert finding(report, "ids")["summary"].endswith("(increasing numbers)")


def test_better_sse_earns_its_findings() -> None:
    """better-sse (Node), used as its docs show: it sends ``retry: 2000`` and gives every
    event a random UUID id, so a reconnection with Last-Event-ID misses what came in between
    (no replay); a HEAD request is never answered (it opens a session)."""
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "better-sse").is_dir():
        pytest.skip("node and the npm peers are installed by .ci/peers.sh")
    process = subprocess.Popen([node, str(NODE_DIR / "better_sse_check_server.mjs")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=NODE_DIR)
    try:
        assert process.stdout is not None
        port = json.loads(process.stdout.readline())["port"]
        code, report = run_check(f"http://127.0.0.1:{port}/events")
    finally:
        stop(process, TIMEOUT)
    assert code == 2
    assert verdicts(report) == {"resumption": "fail", "head": "warn"}, report
    assert finding(report, "retry")["summary"] == "retry: 2000 ms"
    assert finding(report, "ids")["summary"].endswith("(opaque)")
    assert "no replay" in finding(report, "resumption")["summary"]
