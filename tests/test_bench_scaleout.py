"""Smoke test of benchmarks/bench_scaleout.py: a handful of clients over worker processes that
share a real redis-server, every kind side by side.

No timing is asserted; this keeps the benchmark's machinery (the worker processes, the
publisher, the Redis it starts, the figures it reports) from rotting. It needs redis-server
(``.ci/peers.sh``), redis-py and uvicorn (the ``peers`` extra): missing, it skips, or fails
under ``SSE_CORE_REQUIRE_PEERS``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import pytest

from tests.adapters.redis_support import RedisServer, plain, redis  # noqa: F401 (fixture)

pytest.importorskip("uvicorn", reason="uvicorn is in the peers extra")

from benchmarks import bench_scaleout


def test_a_small_run_reports_every_figure_for_every_kind(
    plain: RedisServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    """Eight clients over two workers per kind, three events through the test's Redis: every
    event reaches every client once and in order, with the same id on every worker, every
    figure is a number, the clients are all placed on workers, and the table prints a column
    per kind and the machine's floor."""
    kinds = ["sse_core", "sse_core-asgi"]
    if importlib.util.find_spec("sse_starlette"):
        kinds.append("sse-starlette-pubsub")
    out = tmp_path / "scaleout.json"
    assert bench_scaleout.main([
        "--clients", "8", "--workers", "2", "--events", "3", "--rate", "20",
        "--kinds", ",".join(kinds), "--redis-url", plain.url, "--json", str(out),
    ]) == 0
    results = json.loads(out.read_text())
    assert list(results) == kinds
    for kind, result in results.items():
        assert result["delivered"] == result["expected"] == 24, kind
        assert result["complete_clients"] == 8 and result["errors"] == 0, kind
        assert result["most_ids_per_event"] == 1, kind
        assert result["warmed"] == 8 and result["workers"] == 2, kind
        assert sum(result["clients_per_worker"]) == 8, kind
        for key in ("mem_per_conn_kib", "cpu_ms_per_1000", "redis_cpu_ms_per_1000",
                    "clients_cpu_ms_per_1000", "floor_ms", "p50_ms", "p99_ms"):
            assert math.isfinite(result[key]), (kind, key)
        assert 0 < result["p50_ms"] <= result["p99_ms"], kind
    printed = capsys.readouterr().out
    assert "receipt time read once per epoll batch" in printed
    table, note = printed.split("figures:\n", 1)[1].split("\nThe machine's floor:", 1)
    header, *rows = table.strip().splitlines()
    assert header.split() == kinds
    assert all(row.startswith(label) for row, (label, _, _) in zip(rows, bench_scaleout.ROWS,
                                                                    strict=True))
    assert "cores" in note


def test_the_lean_and_the_parser_clients_count_alike(
    plain: RedisServer, tmp_path: Path  # noqa: F811
) -> None:
    """The same small run measured by the full-parser clients and by the lean clients in two
    processes: both see every event at every client, once and in order, and the machine's
    floor is the CPU per event over the cores."""
    counts = {}
    lean = ["--client", "lean", "--client-processes", "2", "--client-batch-wait", "1"]
    for argv in (["--client", "parser"], lean):
        out = tmp_path / "scaleout.json"
        assert bench_scaleout.main([
            "--clients", "6", "--workers", "2", "--events", "4", "--rate", "20",
            "--kinds", "sse_core", "--redis-url", plain.url, "--json", str(out), *argv,
        ]) == 0
        result = json.loads(out.read_text())["sse_core"]
        counts[argv[1]] = (result["delivered"], result["complete_clients"], result["errors"],
                           result["broken"])
        cpu = (result["cpu_ms_per_1000"] + result["redis_cpu_ms_per_1000"]
               + result["clients_cpu_ms_per_1000"])
        assert result["floor_ms"] == pytest.approx(cpu * 6 / 1000 / (os.cpu_count() or 1))
    assert counts == {"parser": (24, 6, 0, 0), "lean": (24, 6, 0, 0)}


def test_the_benchmark_starts_and_stops_its_own_redis(tmp_path: Path) -> None:
    """Without ``--redis-url`` the benchmark runs a redis-server of its own, which answers
    while the run lasts and is gone after."""
    RedisServer(tmp_path, aof=False)  # skips (or fails, peers required) without redis-server
    with bench_scaleout.running_redis() as url:
        client = redis.Redis.from_url(url, socket_timeout=2.0)
        assert client.ping()
        client.close()
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    with pytest.raises(redis.exceptions.ConnectionError):
        client.ping()
    client.close()
