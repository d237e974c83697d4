"""Smoke test of benchmarks/bench_sync.py: a tiny run of each server, and its baselines.

No timing is asserted; this keeps the benchmark's machinery (the servers' processes, the
spread connections, the figures it reports, the baseline extracted from git) from rotting.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks import bench_sync

ROOT = Path(__file__).resolve().parent.parent


def test_a_small_run_reports_every_figure() -> None:
    """The blocking server, the asyncio server and a baseline (here: this tree) each hold a
    few idle streams and deliver a few events to every one: every figure is a number."""
    for name in [*bench_sync.SERVERS, bench_sync.BASELINE]:
        result = asyncio.run(bench_sync.run_one(
            name, 5, heartbeat=0.2, idle=0.3, events=3, rate=50.0, size=20,
            source=ROOT if name == bench_sync.BASELINE else None,
        ))
        assert result["delivered"] == result["expected"] == 15, name
        for key in ("idle_cpu_pct", "cpu_ms_per_1000", "p50_ms", "p99_ms"):
            assert math.isfinite(result[key]) and result[key] >= 0, (name, key)
        assert result["p50_ms"] <= result["p99_ms"]


def test_the_command_line_runs_before_and_after_and_writes_its_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--baseline`` with a source tree adds the baseline's run, ``--json`` writes the
    figures, the load average is printed."""
    out = tmp_path / "sync.json"
    assert bench_sync.main([
        "--clients", "3", "--heartbeat", "0.2", "--idle", "0.2", "--events", "2",
        "--rate", "50", "--servers", "sync", "--baseline", str(ROOT), "--json", str(out),
        "--repeat", "2",
    ]) == 0
    printed = capsys.readouterr().out
    assert "load after:" in printed and "medians of 2 rounds" in printed
    delivered = {name: r["delivered"] for name, r in json.loads(out.read_text()).items()}
    assert delivered == {"sync": 6, bench_sync.BASELINE: 6}


@pytest.mark.parametrize("argv", [["--servers", "nginx"], ["--baseline", "no/such/rev"]])
def test_an_unknown_server_or_baseline_is_refused(argv: list[str]) -> None:
    """The command line refuses a server it does not run, and a baseline that is neither a
    source tree nor a git revision."""
    with pytest.raises(SystemExit):
        bench_sync.main(argv)


def test_a_git_revision_is_extracted_with_the_built_accelerator() -> None:
    """``--baseline HEAD`` extracts this checkout's committed ``sse_core`` into a temporary
    directory (gone afterwards), with the built C accelerator copied in."""
    if shutil.which("git") is None or subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, check=False
    ).returncode != 0:
        pytest.skip("not a git checkout")
    with bench_sync.baseline_tree("HEAD") as tree:
        assert (tree / "sse_core" / "adapters" / "_sync_server.py").is_file()
        built = sorted(path.name for path in (ROOT / "sse_core").glob("_speedups*.so"))
        assert sorted(path.name for path in (tree / "sse_core").glob("_speedups*.so")) == built
    assert not tree.exists()
