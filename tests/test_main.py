"""``python -m sse_core`` without a command: the version, and whether the accelerator is in use."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

import sse_core
from sse_core.__main__ import main

IS_BUILT = importlib.util.find_spec("sse_core._speedups") is not None


def run_module(*args: str, pure: bool) -> subprocess.CompletedProcess[str]:
    """``python -m sse_core ARGS`` in a fresh interpreter, with or without the pure switch."""
    env = {k: v for k, v in os.environ.items() if k != "SSE_CORE_PURE_PYTHON"}
    if pure:
        env["SSE_CORE_PURE_PYTHON"] = "1"
    return subprocess.run([sys.executable, "-m", "sse_core", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_no_command_reports_this_process(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a command it exits 0 and names the version and what ACCELERATED says."""
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"sse_core {sse_core.__version__} on ")
    assert ("C accelerator: in use" in out) is sse_core.ACCELERATED
    assert "python -m sse_core demo" in out


@pytest.mark.parametrize("pure", [False, True], ids=["default", "SSE_CORE_PURE_PYTHON=1"])
def test_accelerator_line_says_why_not(pure: bool) -> None:
    """In use when built and not switched off; otherwise which of the two it is, and the cost."""
    result = run_module(pure=pure)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    if IS_BUILT and not pure:
        assert lines[1] == "C accelerator: in use (the parser and the serializer run in C)"
        assert "pure Python" not in result.stdout
        return
    if IS_BUILT:
        assert lines[1] == "C accelerator: installed, switched off by SSE_CORE_PURE_PYTHON=1"
    else:
        assert lines[1].startswith("C accelerator: not installed")
        assert "docs/install.rst" in result.stdout
    assert "runs in pure Python: the same behaviour, but slower" in lines[2]


def test_version_flag() -> None:
    """``--version`` prints the version and exits 0."""
    result = run_module("--version", pure=False)
    assert (result.returncode, result.stdout.strip()) == (0, f"sse_core {sse_core.__version__}")


@pytest.mark.parametrize("pure", [False, True], ids=["default", "SSE_CORE_PURE_PYTHON=1"])
def test_import_is_silent(pure: bool) -> None:
    """Importing sse_core prints and warns nothing, accelerator or not (warnings as errors)."""
    env = {k: v for k, v in os.environ.items() if k != "SSE_CORE_PURE_PYTHON"}
    if pure:
        env["SSE_CORE_PURE_PYTHON"] = "1"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import sse_core; print(sse_core.ACCELERATED)"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == f"{IS_BUILT and not pure}\n"
