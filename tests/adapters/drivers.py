"""What the tests of the drivers over the user's HTTP client share (httpx, aiohttp): the
chat request of the LLM case, a real ``tinyproxy`` on loopback, and small waits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sse_core import ClientConfig, Deliver, StreamError
from sse_core.adapters._client_base import AsyncClientBase
from tests._processes import stop
from tests.test_docs_examples import is_peer_required

from .test_asyncio import TIMEOUT, config

#: The words the chat endpoint of ``response_apps.py`` streams back, one event each.
WORDS = ["Hello", ", ", "wörld"]


async def chat(
    source_of: Callable[[ClientConfig], AsyncClientBase], url: str, **kwargs: object
) -> tuple[list[str], StreamError | None]:
    """POST the chat request through a driver's source; the words it got, and what it
    raised."""
    source = source_of(config(
        url, method="POST", body=json.dumps({"words": WORDS}).encode(),
        headers=(("Content-Type", "application/json"),), **kwargs,
    ))
    words: list[str] = []
    try:
        async with source, contextlib.aclosing(source.reports()) as reports:
            async for report in reports:
                if not isinstance(report, Deliver):
                    continue
                if report.event.event == "done":
                    break
                words.append(json.loads(report.event.data)["delta"])
    except StreamError as error:
        return words, error
    return words, None


async def settle() -> None:
    """Give a reconnection that should not happen the time to happen (the backoff's first
    delay is at most 0.05 s here)."""
    await asyncio.sleep(0.5)


def free_port() -> int:
    """A loopback port nothing listens on (bound and let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proxied_requests(log: Path) -> list[str]:
    """The requests tinyproxy logged, one line each."""
    return [line for line in log.read_text().splitlines() if "Request (" in line]


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
