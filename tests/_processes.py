"""Helpers for tests that start real servers as subprocesses."""

from __future__ import annotations

import subprocess


def stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """End a server subprocess: SIGTERM, up to ``timeout`` seconds to exit, then SIGKILL."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
