"""What the httpx drivers' tests share: a real ``tinyproxy`` on loopback (a fixture), the
chat request the LLM-style tests POST, and the project's asyncio ``FaultProxy`` run in a
thread of its own, for tests whose loop is trio (or none)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from sse_core import ClientConfig, ClientState, Deliver, EndCause, HTTPStatusError, StreamError
from sse_core.adapters import IncomingRequest
from sse_core.state import BackoffConfig
from sse_core.testing import FaultProxy, ProxyFault, ProxyStats
from tests._processes import stop
from tests.test_docs_examples import is_peer_required

from .test_asyncio import TIMEOUT, field
from .test_response_servers import _free_port

__all__ = [
    "WORDS",
    "ProxyThread",
    "chat",
    "chat_config",
    "gives_up_on_a_refused_port",
    "proxied_requests",
    "raises_for_404",
    "recording",
    "tinyproxy",
]

_T = TypeVar("_T")

#: The words the chat endpoint (``response_apps.py``, ``POST /chat``) streams back.
WORDS = ["Hello", ", ", "wörld"]


def chat_config(config: Callable[..., ClientConfig], url: str, **kwargs: Any) -> ClientConfig:
    """The chat request as a driver sends it: a JSON ``POST`` of :data:`WORDS`, made by the
    test module's ``config`` (its backoff)."""
    return config(
        url, method="POST", body=json.dumps({"words": WORDS}).encode(),
        headers=(("Content-Type", "application/json"),), **kwargs,
    )


async def chat(source: Any) -> tuple[list[str], StreamError | None]:
    """Read a chat answer from an async driver's source (asyncio or trio) inside its
    ``async with`` block: the words it got, and what it raised."""
    words: list[str] = []
    try:
        async with source:
            reports = source.reports()
            try:
                async for report in reports:
                    if not isinstance(report, Deliver):
                        continue
                    if report.event.event == "done":
                        break
                    words.append(json.loads(report.event.data)["delta"])
            finally:
                closing = getattr(reports, "aclose", None)  # an async generator (asyncio)
                if closing is not None:
                    await closing()
    except StreamError as error:
        return words, error
    return words, None


def recording(
    name: str, seen: list[str | None]
) -> Callable[[IncomingRequest, str | None], str | None]:
    """A server's ``connection_key`` that records request header ``name`` of each stream."""

    def key(request: IncomingRequest, address: str | None) -> str | None:
        seen.append(field(request, name))
        return address

    return key


async def raises_for_404(driver: Any, url: str) -> None:
    """A driver's source (``driver(client, config)``) on a path the server does not serve:
    the plain loop raises HTTPStatusError with the status, the headers and the first bytes
    of the body, after one request."""
    async with httpx.AsyncClient() as client:
        source = driver(client, ClientConfig(url=url.replace("/events", "/nowhere")))
        with pytest.raises(HTTPStatusError) as caught:
            async with source:
                async for _ in source:
                    raise AssertionError("no event expected")
    assert caught.value.status == 404
    assert caught.value.body  # the server's explanation
    assert dict(caught.value.headers)
    assert source.session.state is ClientState.CLOSED
    assert source.metrics.connection_attempts == 1


async def gives_up_on_a_refused_port(driver: Any) -> None:
    """A driver's source on a port nothing listens on: each request fails in the user's
    client (ConnectError), the session reconnects with backoff and gives up after two
    attempts; the plain loop raises StreamError (GAVE_UP) naming the cause."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        backoff = BackoffConfig(base_delay=0.02, min_base_delay=0.01, max_attempts=2)
        async with httpx.AsyncClient() as client:
            source = driver(
                client, ClientConfig(url=f"http://127.0.0.1:{port}/events", backoff=backoff)
            )
            with pytest.raises(StreamError) as caught:
                async with source:
                    async for _ in source:
                        raise AssertionError("no event expected")
    assert caught.value.report.cause is EndCause.GAVE_UP
    assert "ConnectError" in caught.value.reason
    assert source.metrics.connection_attempts == 3


class ProxyThread:
    """A :class:`~sse_core.testing.FaultProxy` run by an asyncio loop in a thread of its own
    (the proxy is asyncio; the test's loop may be trio). Use as a ``with`` block; every
    call blocks the caller until the proxy's loop has done it (a few milliseconds)."""

    def __init__(self, upstream: tuple[str, int], plan: list[ProxyFault] | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._proxy = FaultProxy(upstream, plan=plan or [])

    def __enter__(self) -> ProxyThread:
        self._thread.start()
        self.call(self._proxy.start)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.call(self._proxy.close)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(TIMEOUT)
            self._loop.close()

    def call(self, work: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        """Run ``work()`` on the proxy's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(work(), self._loop).result(TIMEOUT)

    @property
    def address(self) -> tuple[str, int]:
        """Where clients connect."""
        return self._proxy.address

    @property
    def stats(self) -> ProxyStats:
        """The proxy's counters (a snapshot)."""

        async def snapshot() -> ProxyStats:
            return self._proxy.stats

        return self.call(snapshot)

    def schedule(self, *faults: ProxyFault) -> None:
        """Faults for the next connections, in order."""

        async def schedule() -> None:
            self._proxy.schedule(*faults)

        self.call(schedule)

    def cut_all(self) -> int:
        """Cut every connection now (a clean FIN to the client); how many."""
        return self.call(self._proxy.cut_all)


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A tinyproxy on loopback (its URL and its log), stopped by PID afterwards."""
    binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    if not Path(binary).exists():
        if is_peer_required():
            raise AssertionError("tinyproxy is missing: run .ci/peers.sh")
        pytest.skip("tinyproxy is missing (.ci/peers.sh installs it)")
    port = _free_port()
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


def proxied_requests(log: Path) -> list[str]:
    """The request lines tinyproxy logged."""
    return [line for line in log.read_text().splitlines() if "Request (" in line]
