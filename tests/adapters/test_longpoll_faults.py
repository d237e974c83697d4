"""The long-polling fallback under the project's fault proxy: cuts, resets and stalls during
streams, held polls, the switch to polls and the probe back, over 120 seeded runs
(``benchmarks.longpoll_faults``): every event exactly once and in order, or an explicit gap.
"""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.longpoll_faults import SwitchResult, is_good, run_batch

RUNS = 120
EVENTS = 100
BATCH = 20


@pytest.mark.parametrize("first_seed", range(0, RUNS, BATCH))
def test_faults_across_the_switch_lose_and_repeat_nothing(first_seed: int) -> None:
    """Each seeded run (a blocked first stream for half the seeds, random faults on the
    connections after it -- streams, polls and probes alike -- and live cuts while events
    are published) delivers every event once, in order, or reports a gap; and the batch did
    cross the switch both ways and lose polls to faults, so that the faults met polls."""
    seeds = list(range(first_seed, first_seed + BATCH))
    results: list[SwitchResult] = asyncio.run(run_batch(seeds, EVENTS))
    wrong = [result for result in results if not is_good(result)]
    assert not wrong, wrong
    assert sum(result.to_polls > 0 for result in results) >= BATCH // 5
    assert sum(result.to_stream > 0 for result in results) >= 1
    assert sum(result.polls_lost for result in results) >= 1
