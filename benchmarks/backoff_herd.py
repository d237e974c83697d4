"""Thundering-herd simulation for sse_core.state.Backoff, one row per jitter strategy.

N clients lose their stream at the same instant (t = 0) while the server is down for D
seconds: every connection attempt before t = D fails at once (connection refused), every
attempt from then on succeeds. Each client runs its own :class:`~sse_core._backoff.Backoff`
with the default configuration except for the jitter strategy. For each strategy the script
prints the peak number of connection attempts in any window of W seconds, the total number of
attempts, and when the median and the last client were back.

Run it with ``python -m benchmarks.backoff_herd`` (``--help`` for the knobs). The output is
deterministic for a given ``--seed``.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Sequence

import attrs

from sse_core._backoff import Backoff, BackoffConfig, Jitter, Reconnect

__all__ = ["HerdResult", "main", "peak_in_window", "simulate"]


@attrs.frozen(kw_only=True)
class HerdResult:
    """What one simulated herd did."""

    label: str
    peak: int
    attempts: int
    median_back_at: float
    all_back_at: float


def peak_in_window(times: Sequence[float], window: float) -> int:
    """The largest number of instants in ``times`` within any half-open window of that width."""
    ordered = sorted(times)
    peak = 0
    start = 0
    for end, instant in enumerate(ordered):
        while instant - ordered[start] >= window:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


def simulate(
    config: BackoffConfig, *, label: str, clients: int, down_for: float, window: float, seed: int
) -> HerdResult:
    """Run the herd: every client drops at t = 0 and retries until the server is back."""
    rng = random.Random(seed)
    attempt_times: list[float] = []
    back_at: list[float] = []
    for _ in range(clients):
        backoff = Backoff(config, rng=rng)
        backoff.on_connected(-3600.0)  # a long, healthy connection before the outage
        now = 0.0
        while True:
            outcome = backoff.on_disconnected(now)
            if not isinstance(outcome, Reconnect):
                raise SystemExit(f"{label}: a client gave up: {outcome!r}")
            now = outcome.at
            attempt_times.append(now)
            if now >= down_for:
                backoff.on_connected(now)
                back_at.append(now)
                break
    return HerdResult(
        label=label,
        peak=peak_in_window(attempt_times, window),
        attempts=len(attempt_times),
        median_back_at=statistics.median(back_at),
        all_back_at=max(back_at),
    )


def main(argv: Sequence[str] | None = None) -> list[HerdResult]:
    """Parse the command line, run one herd per jitter strategy and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--down-for", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("--window", type=float, default=0.1, help="seconds (default 0.1)")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)

    base = BackoffConfig()
    runs = [(jitter.value, attrs.evolve(base, jitter=jitter)) for jitter in Jitter]
    runs.append(
        (
            "equal + immediate first retry",
            attrs.evolve(base, jitter=Jitter.EQUAL, is_first_retry_immediate=True),
        )
    )
    results = [
        simulate(
            config,
            label=label,
            clients=args.clients,
            down_for=args.down_for,
            window=args.window,
            seed=args.seed,
        )
        for label, config in runs
    ]

    window_ms = round(args.window * 1000)
    print(
        f"{args.clients} clients drop at t=0; server down for {args.down_for:g} s; "
        f"default BackoffConfig (base {base.base_delay:g} s, x{base.multiplier:g}, "
        f"cap {base.max_delay:g} s); seed {args.seed}"
    )
    headers = (
        "jitter",
        f"peak attempts / {window_ms} ms",
        "total attempts",
        "median back (s)",
        "all back (s)",
    )
    rows = [
        (
            r.label,
            str(r.peak),
            str(r.attempts),
            f"{r.median_back_at:.2f}",
            f"{r.all_back_at:.2f}",
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    rule = "  ".join("=" * w for w in widths)
    print(rule)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print(rule)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print(rule)
    return results


if __name__ == "__main__":
    main()
