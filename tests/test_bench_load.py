"""Smoke test of benchmarks/bench_load.py: its clients' decoders, and a tiny run of each server.

No timing is asserted; this keeps the benchmark's machinery (the servers' processes, the
clients, the figures it reports) from rotting, and checks that the lean clients
(``benchmarks/_lean_clients.py``) decode and count exactly what the full-parser clients do.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import random
import shutil
import socket
from pathlib import Path

import h11
import pytest

from benchmarks import _lean_clients, bench_load
from sse_core import Event, Parser

ROOT = Path(__file__).resolve().parent.parent


def chunked_body(pieces: list[bytes]) -> bytes:
    """A chunked body as h11 writes it (a server's), ended."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    server.next_event()
    server.next_event()
    head = server.send(h11.Response(status_code=200, headers=[])) or b""
    body = b"".join(server.send(h11.Data(data=piece)) or b"" for piece in pieces)
    end = server.send(h11.EndOfMessage()) or b""
    assert b"chunked" in head.lower()
    return body + end


@pytest.mark.parametrize("split", [1, 3, 7, 1000])
def test_dechunker_gives_the_data_back_however_the_bytes_come(split: int) -> None:
    """The clients' chunk decoder, fed h11's chunked body in pieces of any size, gives the
    data back whole and sees the last chunk."""
    pieces = [b"data: 1\n\n", b"x" * 300, b"\r\n", b"data: 3\n\n"]
    wire = chunked_body(pieces)
    decoder = bench_load._Dechunker()
    out = b"".join(decoder.feed(wire[i : i + split]) for i in range(0, len(wire), split))
    assert out == b"".join(pieces) and decoder.is_done


def stamped(sequence: int, event_id: str = "", size: int = 5) -> bytes:
    """One event as the benchmarks publish it (stamp, sequence, padding), as sse_core
    writes it: the id first."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}data: 12.5 {sequence} {'x' * size}\n\n".encode()


@pytest.mark.parametrize("split", [1, 2, 3, 7, 1000])
def test_lean_dechunk_gives_the_data_back_however_the_bytes_come(split: int) -> None:
    """The lean clients' chunk decoder, fed h11's chunked body in pieces of any size (a
    chunk-size line or the CRLF after a chunk's data cut anywhere), gives the data back
    whole and sees the last chunk."""
    pieces = [b"data: 1\n\n", b"x" * 300, b"\r\n", b"data: 3\n\n"]
    wire = chunked_body(pieces)
    state, keep, out = [0, 0, 0], b"", []  # type: list[int], bytes, list[bytes]
    for i in range(0, len(wire), split):
        keep = _lean_clients.dechunk(state, keep + wire[i : i + split], out)
    assert b"".join(out) == b"".join(pieces) and state[2] == 1


def test_lean_dechunk_skips_extensions_and_refuses_broken_framing() -> None:
    """Chunk extensions (with optional whitespace before ``;``) are skipped (RFC 9112
    section 7.1.1); a size that is not bare hexadecimal digits, data not followed by CRLF,
    or an endless size line is a ``FramingError``."""
    state, out = [0, 0, 0], []  # type: list[int], list[bytes]
    rest = _lean_clients.dechunk(state, b"5;a=b\r\nhello\r\n5 \t; c\r\nworld\r\n0\r\n\r\n", out)
    assert out == [b"hello", b"world"] and state[2] == 1 and rest == b"\r\n"
    for wire in (b"zz\r\n", b"0x5\r\nhello\r\n", b" 5\r\nhello\r\n", b"+5\r\nhello\r\n",
                 b"5\r\nhelloXY", b"5\r\nhello\rX", b"5" * (_lean_clients.MAX_LINE + 1)):
        with pytest.raises(_lean_clients.FramingError):
            _lean_clients.dechunk([0, 0, 0], wire, [])


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n"])
def test_stamped_events_cut_at_blank_lines_however_the_text_comes(line_end: bytes) -> None:
    """The lean scanner, fed an event stream (LF or CRLF line ends) in pieces of any size,
    gives each stamped event's id, stamp and sequence, skips comments and events whose data
    is not stamped, and gives ``b""`` for an event without an id."""
    text = (
        stamped(0, "a") + b": ping\n\n" + b"event: other\ndata: hello\n\n" + stamped(1)
        + b"retry: 5\nid:b\ndata:12.5 2 x\n\n"
    ).replace(b"\n", line_end)
    expected = [(b"a", b"12.5", b"0"), (b"", b"12.5", b"1"), (b"b", b"12.5", b"2")]
    for split in (1, 2, 5, len(text)):
        events: list[tuple[bytes, bytes, bytes]] = []
        rest = b""
        for i in range(0, len(text), split):
            rest = _lean_clients.stamped_events(rest + text[i : i + split], events)
        assert events == expected and rest == b"", split


def test_the_fast_path_takes_only_chunks_of_exactly_one_stamped_event() -> None:
    """``whole_chunks`` takes the leading chunks that each hold one whole stamped event and
    stops at the first that does not (two events in a chunk, a comment, a size that does
    not match, an incomplete chunk), for the general path to decode."""
    one, two = stamped(0, "1"), stamped(1, "2")
    wire = b"".join(b"%x\r\n%b\r\n" % (len(body), body) for body in (one, two))
    events: list[tuple[bytes, bytes, bytes]] = []
    assert _lean_clients.whole_chunks(wire, events) == len(wire)
    assert events == [(b"1", b"12.5", b"0"), (b"2", b"12.5", b"1")]
    for stop in (
        b"%x\r\n%b\r\n" % (len(one + two), one + two),  # two events in one chunk
        b"8\r\n: ping\n\n\r\n",  # a comment
        b"%x\r\n%b\r\n" % (len(one) + 1, one),  # a size that does not match
        b"%x\r\n%b" % (len(one), one),  # incomplete
    ):
        events = []
        assert _lean_clients.whole_chunks(wire + stop, events) == len(wire), stop
        assert len(events) == 2


def lean_stream() -> tuple[_lean_clients._ClientProcess, _lean_clients._Stream]:
    """A lean client process with one (socketpair) stream, not connected to a server."""
    process = _lean_clients._ClientProcess()
    ours, _theirs = socket.socketpair()
    stream = _lean_clients._Stream(ours)
    process.streams[ours.fileno()] = stream
    return process, stream


def test_lean_clients_decode_what_the_parser_decodes_for_any_split() -> None:
    """A response (head and chunked body: stamped events, comments, an event split over
    chunks, several events in one chunk) cut at random places gives the lean client the
    same stamped events, in order, as sse_core's ``Parser`` gets from the dechunked body;
    the window's checks pass and every delivery is timed."""
    rng = random.Random(12)
    bodies = [stamped(n, str(100 + n), size=rng.randrange(0, 300)) for n in range(40)]
    pieces = [*bodies[:10], b": keep-alive\n\n", bodies[10][:7], bodies[10][7:]]
    pieces += [b"".join(bodies[11:14]), *bodies[14:]]
    wire = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n") + chunked_body(pieces)[:-5]
    parsed = [item for item in Parser().feed(b"".join(pieces)) if isinstance(item, Event)]
    assert len(parsed) == 40
    for _ in range(30):
        process, stream = lean_stream()
        process.start_window(40)
        position = 0
        while position < len(wire):
            step = rng.choice([1, 2, 3, 17, 64, 400, 5000])
            process.deliver(stream, wire[position : position + step], now=13.0)
            position += step
        assert stream.received == 40 and stream.errors == 0 and process.complete == 1
        assert list(process.latencies) == [0.5] * 40
        assert {n: ids for n, ids in process.ids.items()} == {
            n: {event.id.encode()} for n, event in enumerate(parsed) if event.id
        }


def test_lean_clients_count_a_repeat_a_gap_and_broken_framing() -> None:
    """In a window, a sequence that comes twice or skips one, or an id repeated, counts as
    an error and the stream is not complete; bytes that break the chunked framing raise
    ``FramingError`` (the loop closes that stream and counts it broken)."""
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    for sequences, ids in (([0, 1, 1, 2], "abcd"), ([0, 2, 3], "abc"), ([0, 1, 2], "aab")):
        process, stream = lean_stream()
        process.start_window(3)
        process.deliver(stream, head, now=13.0)
        for n, event_id in zip(sequences, ids, strict=True):
            process.deliver(stream, chunked_body([stamped(n, event_id)])[:-5], now=13.0)
        assert stream.errors >= 1 and process.complete == 0, sequences
        assert process.example
    process, stream = lean_stream()
    process.deliver(stream, head, now=13.0)
    with pytest.raises(_lean_clients.FramingError):
        process.deliver(stream, b"5\r\nhello!!", now=13.0)


@pytest.mark.parametrize("http", ["1.1", "1.0"])
def test_a_small_run_reports_every_figure(http: str) -> None:
    """Each server (sse_core, the asyncio floor; sse-starlette when installed) and a
    baseline (here: this tree) serve a few clients over HTTP/1.1 and 1.0: every event
    reaches every client once and in order, every figure is a number, and the lean clients
    (in one process, and in two that wait a little after each batch) count exactly what
    the full-parser clients count."""
    servers = ["sse_core", "asyncio-floor"]
    if importlib.util.find_spec("sse_starlette") and importlib.util.find_spec("uvicorn"):
        servers.append("sse-starlette")
    for name in [*servers, bench_load.BASELINE]:
        counts = {}
        for client in (bench_load.ClientChoice("lean"), bench_load.ClientChoice("parser"),
                       bench_load.ClientChoice("lean", processes=2, batch_wait_ms=1.0)):
            result = asyncio.run(bench_load.run_one(
                name, clients=5, events=3, rate=50.0, size=20, http=http,
                source=ROOT if name == bench_load.BASELINE else None, client=client,
            ))
            counts[client] = (
                result["delivered"], result["complete_clients"], result["errors"],
                result["broken"], result["most_ids_per_event"],
            )
            for key in ("mem_per_conn_kib", "cpu_ms_per_1000", "p50_ms", "p99_ms",
                        "clients_cpu_ms_per_1000"):
                assert math.isfinite(result[key]), (name, http, client, key)
            assert result["p50_ms"] <= result["p99_ms"]
        assert set(counts.values()) == {(15, 5, 0, 0, 1)}, (name, http, counts)


def test_the_command_line_runs_before_and_after_and_writes_its_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--baseline`` adds a run from another source tree next to sse_core's, ``--json``
    writes the figures and ``--profile`` the server's profile; an unknown server or a
    baseline without sse_core is refused. The baseline is a tree with the package alone, as
    ``git archive REV sse_core`` gives (no ``benchmarks`` package beside it)."""
    out, profile = tmp_path / "load.json", tmp_path / "serve.prof"
    baseline = tmp_path / "before"
    shutil.copytree(ROOT / "sse_core", baseline / "sse_core")
    assert bench_load.main([
        "--clients", "3", "--events", "2", "--rate", "50", "--servers", "sse_core",
        "--baseline", str(baseline), "--json", str(out), "--profile", str(profile),
        "--repeat", "2",
    ]) == 0
    printed = capsys.readouterr().out
    assert "sse_core@baseline / sse_core:" in printed and "medians of 2 rounds" in printed
    assert "receipt time read once per epoll batch" in printed
    results = json.loads(out.read_text())
    assert set(results) == {"sse_core", bench_load.BASELINE}
    assert all(r["delivered"] == 6 for r in results.values())
    assert profile.stat().st_size > 0
    for argv in (["--servers", "nginx"], ["--baseline", str(tmp_path)], ["--client", "curl"]):
        with pytest.raises(SystemExit):
            bench_load.main(argv)
