"""Run many seeded simulator scenarios and report completion, gaps and speed.

Each seed gives one :func:`sse_core.testing.random_scenario`; the script runs them with
:func:`sse_core.testing.simulate` and prints how many completed without breaking the
invariant, the violations grouped by kind (with the first seed of each, to reproduce with
``simulate(random_scenario(seed))``), what the faults cost (reconnections, gaps, missed
events), how often the long-poll scenarios switched transport, and the wall time.

Run it with ``python -m benchmarks.simulate`` (``--help`` for the knobs).
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from collections.abc import Sequence

import attrs

from sse_core import ReportGap, ReportTransport, Transport
from sse_core.testing import random_scenario, simulate

__all__ = ["Summary", "main", "run"]


@attrs.frozen(kw_only=True)
class Summary:
    """Figures over a run of scenarios."""

    scenarios: int
    completed: int
    violations: dict[str, tuple[int, int]]  # kind -> (count, first seed)
    published: int
    delivered: int
    missed: int
    reconnects: int
    gap_reasons: dict[str, int]
    long_poll_scenarios: int  # with transport "auto"
    switched: int  # of those, how many switched to long-polling at least once
    switched_back: int  # of those, how many ended up streaming again
    polls: int
    virtual_seconds: float
    wall_seconds: float


def _kind(violation: str) -> str:
    # Drop the time, counts and ids so that reports of one kind group together.
    text = violation.split(": ", 1)[-1]
    text = re.sub(r"'[^']*'|\[[^\]]*\]", "_", text)
    return re.sub(r"\d+", "N", text)


def run(first_seed: int, count: int) -> Summary:
    """Run ``count`` scenarios from ``first_seed`` on and sum up what happened."""
    started = time.perf_counter()
    violations: dict[str, tuple[int, int]] = {}
    reasons: Counter[str] = Counter()
    completed = published = delivered = missed = reconnects = 0
    long_poll = switched = switched_back = polls = 0
    virtual = 0.0
    for seed in range(first_seed, first_seed + count):
        scenario = random_scenario(seed)
        result = simulate(scenario)
        if scenario.transport == "auto":
            long_poll += 1
            reports = [e for _, e in result.record if isinstance(e, ReportTransport)]
            switched += bool(reports)
            switched_back += bool(reports) and reports[-1].transport is Transport.STREAMING
            polls += result.polls
        completed += result.is_ok
        published += result.published
        delivered += result.delivered
        missed += result.missed
        reconnects += result.reconnects
        virtual += result.virtual_duration
        reasons.update(e.reason for _, e in result.record if isinstance(e, ReportGap))
        if result.violation is not None:
            kind = _kind(result.violation)
            seen, first = violations.get(kind, (0, seed))
            violations[kind] = (seen + 1, first)
    return Summary(
        scenarios=count, completed=completed, violations=violations, published=published,
        delivered=delivered, missed=missed, reconnects=reconnects, gap_reasons=dict(reasons),
        long_poll_scenarios=long_poll, switched=switched, switched_back=switched_back,
        polls=polls, virtual_seconds=virtual, wall_seconds=time.perf_counter() - started,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns 1 when any scenario broke the invariant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("-n", "--scenarios", type=int, default=2000, help="how many")
    args = parser.parse_args(argv)
    summary = run(args.seed, args.scenarios)
    rate = summary.completed / summary.scenarios if summary.scenarios else 1.0
    print(f"scenarios:  {summary.scenarios} (seeds {args.seed}..{args.seed + args.scenarios - 1})")
    print(f"completed:  {summary.completed} ({rate:.2%})")
    print(f"events:     {summary.published} published, {summary.delivered} delivered, "
          f"{summary.missed} missed inside reported gaps")
    print(f"faults:     {summary.reconnects} reconnections, gaps {summary.gap_reasons}")
    print(f"long-poll:  {summary.long_poll_scenarios} scenarios may poll, "
          f"{summary.switched} switched ({summary.switched_back} back to streaming), "
          f"{summary.polls} polls")
    print(f"time:       {summary.wall_seconds:.2f} s wall "
          f"({summary.scenarios / summary.wall_seconds:.0f} scenarios/s), "
          f"{summary.virtual_seconds:.0f} s virtual")
    for kind, (seen, first) in sorted(summary.violations.items(), key=lambda kv: -kv[1][0]):
        print(f"violation:  {seen} x {kind!r} (first seed {first})")
    return 1 if summary.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
