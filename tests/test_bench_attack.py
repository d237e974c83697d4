"""Smoke test of benchmarks/bench_attack.py: its quick path runs end to end at tiny sizes.

No figure is asserted (``tests/adapters/test_attack.py`` holds the bounds); this keeps the
benchmark from rotting.
"""

from __future__ import annotations

import pytest

pytest.importorskip("uvicorn", reason="the benchmark's baseline runs under uvicorn")
pytest.importorskip("sse_starlette", reason="the benchmark's baseline is sse-starlette")

from benchmarks import bench_attack


def test_quick_run_prints_a_table_per_attack(capsys: pytest.CaptureFixture[str]) -> None:
    """``--quick`` with few connections prints each attack's table: a row per server, ``n/a``
    where the attack does not apply to the peer, every connection opened."""
    argv = ["--quick", "--servers", "asyncio,sse-starlette", "--attacks", "1,2,4gz",
            "--connections", "10", "--readers", "10", "--hold", "0.3", "--settle", "0.2"]
    assert bench_attack.main(argv) == 0
    out = capsys.readouterr().out
    for key in ("1", "2", "4gz"):
        assert f"attack {key}: 10 {bench_attack.ATTACKS[key]}" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("asyncio ", "sse-"))]
    assert [row[:2] for row in rows] == [
        ["asyncio", "10"], ["sse-starlette", "10"],  # attack 1
        ["asyncio", "10"], ["sse-starlette", "n/a"],  # 2: no replay log in the peer
        ["asyncio", "10"], ["sse-starlette", "n/a"],  # 4gz: no gzip in the peer
    ]
