"""The README's demo command runs and shows what it claims."""

from __future__ import annotations

import re

import pytest

from sse_core.__main__ import main


def test_demo_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo delivers every event exactly once through live faults, showing the client's
    status, its data going stale during the stall and fresh again, and the health monitor's
    reconnection alert raised during the burst of faults and resolved before the end; it
    rebuilds every event through hostile chunking, reports the failure modes, and shows the
    sessions keeping the invariant in simulated fault scenarios."""
    assert main(["demo", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "exactly once, in order    yes" in out  # the live part, on loopback
    assert "RECONNECTING  (stalled: no complete line for 1 s)" in out
    stale = re.search(r"([\d.]+)s  STALE +data may be stale \(no byte for [\d.]+ s\)", out)
    fresh = re.search(r"([\d.]+)s  FRESH +fresh again \(a byte after [\d.]+ s without one\)", out)
    assert stale and fresh and float(stale[1]) < float(fresh[1])
    raised = re.search(r"([\d.]+)s  ALERT +reconnections: (\d+), over 2 \(window [\d.]+ s, "
                       r"reconnections \d+\)", out)
    resolved = re.search(r"([\d.]+)s  RESOLVED +reconnections: clear for 1 s, alerted for", out)
    assert raised and int(raised[2]) > 2
    assert resolved and float(raised[1]) < float(resolved[1])
    assert re.search(r"alerts raised, resolved +(\d+), \1\n", out)  # none left open
    assert "identical: True" in out
    assert "refused: invalid id field" in out
    assert "is_truncated=True" in out
    assert "LimitExceeded: max_line_length exceeded" in out
    assert "300/300 scenarios kept the invariant" in out
