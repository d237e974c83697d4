"""Smoke tests of the long-poll benchmarks at tiny sizes (no timing asserted): they run,
deliver everything and print their figures."""

from __future__ import annotations

import pytest

from benchmarks import longpoll_cpu, longpoll_faults


def test_longpoll_cpu_runs_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    """Five pollers, then five streams, get three events each; CPU and rates are printed."""
    assert longpoll_cpu.main(["--clients", "5", "--events", "3", "--rate", "20"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("delivered 15/15") == 2, printed
    assert "us per delivery" in printed and "requests/s" in printed


def test_longpoll_faults_runs_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    """Two seeded fault runs across the switch: both exact, figures printed."""
    assert longpoll_faults.main(["--runs", "2", "--events", "20"]) == 0
    assert "2 exact, 0 with an explicit gap, 0 wrong" in capsys.readouterr().out
