"""The README's demo command runs and shows what it claims."""

from __future__ import annotations

import pytest

from sse_core.__main__ import main


def test_demo_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo rebuilds every event through hostile chunking, reports the failure modes, and
    shows the sessions keeping the invariant in simulated fault scenarios."""
    assert main(["demo", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "exactly once, in order    yes" in out  # the live part, on loopback
    assert "RECONNECTING  (stalled: no complete line for 1 s)" in out
    assert "identical: True" in out
    assert "refused: invalid id field" in out
    assert "is_truncated=True" in out
    assert "LimitExceeded: max_line_length exceeded" in out
    assert "300/300 scenarios kept the invariant" in out
