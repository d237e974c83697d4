"""Helpers for tests that start real servers as subprocesses: ``stop`` for any of them, and
a ``tinyproxy`` fixture (a real HTTP proxy on loopback)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_docs_examples import is_peer_required

#: Seconds a server may take to start; only a failure waits this long.
TIMEOUT = 10.0


def stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """End a server subprocess: SIGTERM, up to ``timeout`` seconds to exit, then SIGKILL."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def proxied_requests(log: Path) -> list[str]:
    """The request lines tinyproxy logged (``GET http://... HTTP/1.1``), in order."""
    return [line.partition("): ")[2] for line in log.read_text().splitlines()
            if "Request (" in line]


def free_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A tinyproxy on loopback (its URL and its log), stopped by PID afterwards."""
    binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    if not Path(binary).exists():
        if is_peer_required():
            raise AssertionError("tinyproxy is missing: run .ci/peers.sh")
        pytest.skip("tinyproxy is missing (.ci/peers.sh installs it)")
    port = free_port()
    log = tmp_path / "tinyproxy.log"
    conf = tmp_path / "tinyproxy.conf"
    conf.write_text(
        f'Port {port}\nListen 127.0.0.1\nTimeout 60\nLogFile "{log}"\nLogLevel Info\n'
        "MaxClients 20\nAllow 127.0.0.1\n"
    )
    out = tmp_path / "tinyproxy.out"
    with out.open("wb") as sink:
        process = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=sink, stderr=sink)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (log.exists() and "Accepting connections" in log.read_text()):
            assert process.poll() is None, f"tinyproxy exited:\n{out.read_text()}"
            assert time.monotonic() < deadline, f"tinyproxy did not start:\n{out.read_text()}"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", log
    finally:
        stop(process, TIMEOUT)
