"""Smoke test of benchmarks/bench_state.py: every row runs and checks its result at tiny size.

No timing is asserted; this keeps the benchmark from rotting.
"""

from __future__ import annotations

import pytest

from benchmarks import bench_state

# The 100k-event rows differ from the 10k ones only by size; they are left to real runs.
SMALL = [name for name in bench_state.BENCHES if "100k" not in name]


@pytest.mark.parametrize("name", SMALL)
def test_each_benchmark_gives_a_checked_result(name: str) -> None:
    """Each benchmark body runs and its own correctness check accepts the result."""
    body, ops, check = bench_state.BENCHES[name](300)
    assert ops == 300
    assert check(body())


def test_main_prints_a_row_per_benchmark(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command line entry point prints a header and one row per hot path."""
    monkeypatch.setattr(bench_state, "BENCHES", {k: bench_state.BENCHES[k] for k in SMALL})
    assert bench_state.main(["--quick", "-n", "200"]) == 0
    out = capsys.readouterr().out
    for name in bench_state.BENCHES:
        assert name in out
