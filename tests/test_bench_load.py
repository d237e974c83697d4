"""Smoke test of benchmarks/bench_load.py: its chunk decoder, and a tiny run of each server.

No timing is asserted; this keeps the benchmark's machinery (the servers' processes, the
clients, the figures it reports) from rotting.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
from pathlib import Path

import h11
import pytest

from benchmarks import bench_load

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


def test_a_small_run_reports_every_figure() -> None:
    """Each server (sse_core, the asyncio floor; sse-starlette when installed) and a
    baseline (here: this tree) serve a few clients over HTTP/1.1 and 1.0: every event
    reaches every client and every figure is a number."""
    servers = ["sse_core", "asyncio-floor"]
    if importlib.util.find_spec("sse_starlette") and importlib.util.find_spec("uvicorn"):
        servers.append("sse-starlette")
    for http in ("1.1", "1.0"):
        for name in [*servers, bench_load.BASELINE]:
            result = asyncio.run(bench_load.run_one(
                name, clients=5, events=3, rate=50.0, size=20, http=http,
                source=ROOT if name == bench_load.BASELINE else None,
            ))
            assert result["delivered"] == result["expected"] == 15, (name, http)
            for key in ("mem_per_conn_kib", "cpu_ms_per_1000", "p50_ms", "p99_ms"):
                assert math.isfinite(result[key]), (name, http, key)
            assert result["p50_ms"] <= result["p99_ms"]


def test_the_command_line_runs_before_and_after_and_writes_its_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--baseline`` adds a run from another source tree next to sse_core's, ``--json``
    writes the figures and ``--profile`` the server's profile; an unknown server or a
    baseline without sse_core is refused."""
    out, profile = tmp_path / "load.json", tmp_path / "serve.prof"
    assert bench_load.main([
        "--clients", "3", "--events", "2", "--rate", "50", "--servers", "sse_core",
        "--baseline", str(ROOT), "--json", str(out), "--profile", str(profile), "--repeat", "2",
    ]) == 0
    printed = capsys.readouterr().out
    assert "sse_core@baseline / sse_core:" in printed and "medians of 2 rounds" in printed
    results = json.loads(out.read_text())
    assert set(results) == {"sse_core", bench_load.BASELINE}
    assert all(r["delivered"] == 6 for r in results.values())
    assert profile.stat().st_size > 0
    for argv in (["--servers", "nginx"], ["--baseline", str(tmp_path)]):
        with pytest.raises(SystemExit):
            bench_load.main(argv)
