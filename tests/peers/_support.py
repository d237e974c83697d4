"""Shared plumbing of the tests against peers nobody here wrote (Chromium, Node).

A :class:`Stream` is one resumable event stream served by sse_core's asyncio
``EventStreamServer`` that a test can cut in three ways (:data:`CUTS`), or cut before a new
client's first event (:meth:`Stream.arm_position_cut`, :meth:`Stream.publish_while_away`);
:func:`running` starts a peer program and kills it whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import string
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sse_core import Event, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters.asyncio import EventStreamServer
from sse_core.state import ReplayLog, StoredEvent
from sse_core.testing import CutAfter, FaultProxy, StallAfter

__all__ = [
    "CUTS",
    "NODE_DIR",
    "PEER_TIMEOUT",
    "POSITION_CUT_CONFIG",
    "Stream",
    "events_to_publish",
    "node_or_skip",
    "read_json_line",
    "running",
]

#: Where the Node scripts and their ``node_modules`` (from ``.ci/peers.sh``) live.
NODE_DIR = Path(__file__).parent / "node"

#: Seconds any one wait on a peer may take; only a failure ever waits this long.
PEER_TIMEOUT = 30.0

#: How a test ends the peer's connection from the server side:
#: ``restart`` -- the server closes every stream and stops listening, events are published to
#: the replay log while it is down, and a new server starts on the same port with the same log
#: (a deploy); ``drop`` -- an event larger than the server's send-queue bound makes the
#: broadcaster drop the client, which must get that event by replay; ``reset`` -- a TCP reset
#: between events, from a fault proxy between the peer and the server.
CUTS = ("restart", "drop", "reset")

#: The send-queue bound of every test server, and an event that passes it even gzipped.
MAX_QUEUED_BYTES = 4096
BIG_DATA = "".join(
    random.Random(5).choices(string.ascii_letters + string.digits, k=4 * MAX_QUEUED_BYTES)
)


#: A server for the position cut: no gzip and no heartbeats, so that what a new client gets
#: before its first event (the head, the padding, ``retry:``, the position) is the same bytes
#: on every connection, whatever the client accepts, and nothing follows them until an event
#: is published. ``retry`` is long enough that no peer comes back before the test is ready.
POSITION_CUT_CONFIG = ServerConfig(
    retry=300,
    padding=2048,
    heartbeat_interval=None,
    is_compression_enabled=False,
    headers=(("Access-Control-Allow-Origin", "*"),),
)


def node_or_skip() -> str:
    """The ``node`` executable, or skip the test when it or the npm peers are not installed."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (CI runs .ci/peers.sh, which needs /usr/bin/node)")
    for package in ("eventsource", "better-sse"):
        if not (NODE_DIR / "node_modules" / package / "package.json").is_file():
            pytest.skip(f"npm package {package!r} is not installed: run .ci/peers.sh")
    return node


def events_to_publish(prefix: str, count: int) -> list[Event]:
    """``count`` varied events: plain, a named type, multi-line, non-ASCII, markup, empty."""
    kinds = [
        lambda i: Event(data=f"{prefix}{i}"),
        lambda i: Event(data=f"{prefix}{i} tick", event="tick"),
        lambda i: Event(data=f"{prefix}{i} line one\nline two\n\nline four"),
        lambda i: Event(data=f"{prefix}{i} \u00e9v\u00e8nement \u2603 \U0001f600"),
        lambda i: Event(data=f'{prefix}{i} <b>&amp;</b> "quoted" : colon'),
        lambda i: Event(data=""),
    ]
    return [kinds[i % len(kinds)](i) for i in range(count)]


class Stream:
    """One resumable stream on 127.0.0.1, its replay log surviving restarts.

    Args:
        config: The server configuration (a short ``retry`` keeps reconnections quick).
        with_proxy: Put a :class:`~sse_core.testing.FaultProxy` between the peer
            and the server (needed for the ``reset`` cut).
    """

    def __init__(self, config: ServerConfig, *, with_proxy: bool = False) -> None:
        self.log = ReplayLog()
        self.config = config
        self.server: EventStreamServer | None = None
        self.proxy = FaultProxy(("127.0.0.1", 1)) if with_proxy else None
        self._port = 0

    async def start(self) -> None:
        """Listen (port 0 the first time, the same port after a restart)."""
        server = EventStreamServer(
            self.log,
            config=self.config,
            options=ServerOptions(path="/events", max_queued_bytes=MAX_QUEUED_BYTES),
        )
        await server.start(port=self._port)
        self.server = server
        self._port = server.address[1]
        if self.proxy is not None and self.proxy.upstream[1] == 1:
            self.proxy.upstream = server.address
            await self.proxy.start()

    async def aclose(self) -> None:
        """Close the proxy and the server (idempotent)."""
        if self.proxy is not None:
            await self.proxy.close()
        if self.server is not None:
            await self.server.aclose(grace=0.5)

    @property
    def url(self) -> str:
        """The stream's URL as the peer should see it."""
        address = self.proxy.address if self.proxy is not None else ("127.0.0.1", self._port)
        return f"http://{address[0]}:{address[1]}/events"

    def publish(self, event: Event) -> StoredEvent:
        """Publish to the running server's clients (and its replay log)."""
        assert self.server is not None
        return self.server.publish(event)

    def live_last_event_ids(self) -> list[str]:
        """The ``Last-Event-ID`` each client streaming now sent with its request."""
        assert self.server is not None
        return [
            subscriber.session.last_event_id
            for subscriber in self.server.broadcaster
            if not subscriber.is_closed
        ]

    def content_encodings(self) -> list[str | None]:
        """The body encoding of each client streaming now (``"gzip"`` or ``None``)."""
        assert self.server is not None
        return [
            subscriber.session.content_encoding
            for subscriber in self.server.broadcaster
            if not subscriber.is_closed
        ]

    async def head_and_position_size(self) -> int:
        """How many bytes a new client gets before its first event, read by a raw probe that
        asks the server itself (no ``Last-Event-ID``) and takes everything until the stream
        has been quiet for half a second (the server must not send heartbeats or gzip)."""
        assert self.server is not None
        assert self.config.heartbeat_interval is None
        assert not self.config.is_compression_enabled
        reader, writer = await asyncio.open_connection(*self.server.address)
        try:
            writer.write(
                b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
            )
            received = b""
            deadline = time.monotonic() + PEER_TIMEOUT
            while time.monotonic() < deadline:
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), 0.5)
                except asyncio.TimeoutError:
                    break
                assert chunk, "the server closed the probe"
                received += chunk
        finally:
            writer.close()
        deadline = time.monotonic() + PEER_TIMEOUT
        while self.live_last_event_ids():  # until the server saw the probe go
            assert time.monotonic() < deadline, "the server kept the probe"
            await asyncio.sleep(0.01)
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and body, received
        return len(received)

    async def arm_position_cut(self) -> str:
        """Plan the proxy's next two connections: the first is cut (a clean FIN) right after
        the head and the position, before any event; the second (the peer coming back) is
        held at the proxy, its request unsent, until :meth:`publish_while_away` releases it.

        Returns:
            The position the peer gets (the log's newest id), which it must resume from.
        """
        assert self.proxy is not None
        size = await self.head_and_position_size()
        self.proxy.schedule(CutAfter(after_bytes=size), StallAfter(after_bytes=0))
        return self.log.position

    async def publish_while_away(self, missed: Sequence[Event]) -> list[StoredEvent]:
        """Once the peer's first connection was cut and its reconnection is held at the
        proxy, publish ``missed`` (no client is streaming, so only a resumption can bring
        them), then let the reconnection through.

        Returns:
            The stored ``missed`` events, in order.
        """
        proxy = self.proxy
        assert proxy is not None
        await asyncio.wait_for(proxy.wait_for_connections(2), PEER_TIMEOUT)
        assert proxy.stats.cuts == 1, proxy.stats
        assert self.live_last_event_ids() == []
        stored = [self.publish(event) for event in missed]
        deadline = time.monotonic() + PEER_TIMEOUT
        while proxy.stats.stalls < 1:
            assert time.monotonic() < deadline, "the reconnection was not held"
            await asyncio.sleep(0.01)
        assert self.live_last_event_ids() == []  # the request is still at the proxy
        assert proxy.release() == 1
        return stored

    async def cut(self, how: str, missed: Sequence[Event]) -> list[StoredEvent]:
        """End the peer's connection from the server side, ``missed`` being published
        around the cut so that the peer can only get them by resuming.

        Returns:
            The stored ``missed`` events, in order.
        """
        assert self.server is not None
        stored: list[StoredEvent] = []
        if how == "restart":
            await self.server.aclose(grace=PEER_TIMEOUT)
            stored = [self.log.append(event, time.monotonic()) for event in missed]
            await self.start()
        elif how == "drop":
            dropped = self.server.broadcaster.dropped
            stored.append(self.publish(Event(data=BIG_DATA)))
            assert self.server.broadcaster.dropped == dropped + 1, "the client was not dropped"
            stored += [self.publish(event) for event in missed]
        elif how == "reset":
            assert self.proxy is not None
            assert await self.proxy.reset_all() == 1, "no connection to reset"
            stored = [self.publish(event) for event in missed]
        else:
            raise AssertionError(f"unknown cut {how!r}")
        return stored


@contextlib.asynccontextmanager
async def running(*argv: str, cwd: Path | None = None) -> AsyncIterator[Any]:
    """Run a program with piped stdout/stderr; kill it on the way out if it still runs."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.communicate()


async def read_json_line(process: Any, timeout: float = PEER_TIMEOUT) -> Any:
    """The next line the program printed, decoded as JSON (fails on end of output)."""
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"the peer printed nothing for {timeout} s") from None
    if not line:
        stderr = await process.stderr.read()
        raise AssertionError(f"the peer ended its output; stderr: {stderr.decode()[-2000:]}")
    return json.loads(line)
