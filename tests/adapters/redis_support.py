"""A redis-server of the test's own, for the shared log's tests (started on a free loopback
port in a temporary directory, with or without AOF, stopped by PID) -- or a valkey-server,
the fork of Redis that speaks its protocol, started the same way (``each_server`` and
``each_plain`` run a test against both)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sse_core import Comment, Event, Parser
from sse_core.state import POSITION_EVENT_TYPE
from tests._processes import stop

redis = pytest.importorskip("redis", reason="redis (redis-py) is in the peers extra")

#: Seconds a start, or a scenario, may take; only a failure ever waits this long.
TIMEOUT = 30.0


def run(scenario: Callable[[], Awaitable[None]], timeout: float = TIMEOUT) -> None:
    """Run an async scenario under a deadline."""

    async def bounded() -> None:
        await asyncio.wait_for(scenario(), timeout)

    asyncio.run(bounded())


#: Where the docs' examples are.
EXAMPLES = Path(__file__).resolve().parent.parent.parent / "docs" / "examples"


def run_example(name: str, url: str) -> subprocess.CompletedProcess[str]:
    """Run ``docs/examples/<name>`` as a user would, against the Redis at ``url`` (in
    ``REDIS_URL``), under a deadline; its output captured."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)], env={**os.environ, "REDIS_URL": url},
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )


#: The servers the shared log is tested on: Redis, and Valkey (a fork of Redis 7.2 that
#: speaks the same protocol; Debian ships it in bookworm-backports).
PROGRAMS = ("redis-server", "valkey-server")


def _started(directory: Path, *, aof: bool, program: str) -> Iterator[RedisServer]:
    made = RedisServer(directory, aof=aof, program=program)
    made.start()
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture(params=[False, True], ids=["no-persistence", "aof"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server without persistence, and one with AOF (``appendfsync always``)."""
    yield from _started(tmp_path, aof=request.param, program="redis-server")


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server without persistence."""
    yield from _started(tmp_path, aof=False, program="redis-server")


@pytest.fixture(
    params=[(program, aof) for program in PROGRAMS for aof in (False, True)],
    ids=[f"{program.split('-')[0]}-{kind}" for program in PROGRAMS
         for kind in ("no-persistence", "aof")],
)
def each_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    """``server`` on a redis-server, then on a valkey-server."""
    program, aof = request.param
    yield from _started(tmp_path, aof=aof, program=program)


@pytest.fixture(params=PROGRAMS, ids=[program.split("-")[0] for program in PROGRAMS])
def each_plain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    """``plain`` on a redis-server, then on a valkey-server."""
    yield from _started(tmp_path, aof=False, program=request.param)


class RedisServer:
    """A redis-server of the test's own: a free loopback port, its own directory.

    Args:
        directory: Where it keeps its files (and its log, ``redis.log``).
        aof: Whether it keeps an append-only file (``appendfsync always``).
        program: ``redis-server``, or ``valkey-server`` (which takes the same options).
    """

    def __init__(self, directory: Path, *, aof: bool, program: str = "redis-server") -> None:
        binary = shutil.which(program)
        if binary is None:
            if os.environ.get("SSE_CORE_REQUIRE_PEERS", "") not in ("", "0"):
                raise AssertionError(f"{program} is missing: run .ci/peers.sh")
            pytest.skip(f"{program} is missing (.ci/peers.sh installs it)")
        self.program = program
        self.binary = binary
        self.directory = directory
        self.aof = aof
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.version = ""  # its name and version, once started ("valkey 8.0.1")

    def start(self) -> None:
        """Start it and wait until it answers PING (after loading its AOF)."""
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--save", "", "--daemonize", "no",
            "--appendonly", "yes" if self.aof else "no", "--appendfsync", "always",
        ]
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 (the child has its copy)
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1.0)
        deadline = time.monotonic() + TIMEOUT
        try:
            while True:
                assert self.process.poll() is None, (self.directory / "redis.log").read_text()
                try:
                    if client.ping():
                        self._check_kind(client.info("server"))
                        return
                except redis.exceptions.RedisError:
                    pass
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        finally:
            client.close()

    def _check_kind(self, info: dict[str, Any]) -> None:
        """Make sure the server is the one asked for (a ``redis-server`` that is Valkey under
        Redis's name, say, would leave Redis untested); keep its name and version."""
        name = info.get("server_name", "redis")
        assert name == self.program.split("-")[0], f"{self.binary} is {name}: {info}"
        self.version = f"{name} {info.get(f'{name}_version')}"

    def stop(self) -> None:
        """SIGTERM (Redis shuts down cleanly), SIGKILL if it does not exit."""
        if self.process is not None:
            stop(self.process, 10.0)
            self.process = None

    def crash(self) -> None:
        """SIGKILL: no shutdown, nothing written at exit."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def client(self) -> Any:
        """A new asyncio client on its own connection pool."""
        return redis.asyncio.Redis.from_url(self.url, socket_timeout=2.0)


class StreamReader:
    """A bare event-stream client over asyncio: one HTTP/1.0 GET (the body is then
    close-delimited), the events parsed by sse_core's parser. It sees every byte the server
    sends: position and gap events, heartbeats (``comments`` counts them), the end."""

    def __init__(self, reader: Any, writer: Any, head: bytes) -> None:
        self._reader = reader
        self._writer = writer
        self.head = head
        self._parser = Parser()
        self._items: list[Any] = []
        self.comments = 0
        self.is_ended = False

    @classmethod
    async def open(
        cls, address: tuple[str, int], path: str = "/events", last_event_id: str | None = None
    ) -> StreamReader:
        """Connect, send the request, read the response head (any status)."""
        reader, writer = await asyncio.open_connection(*address)
        lines = [f"GET {path} HTTP/1.0", f"Host: {address[0]}:{address[1]}",
                 "Accept: text/event-stream"]
        if last_event_id is not None:
            lines.append(f"Last-Event-ID: {last_event_id}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        return cls(reader, writer, head)

    @property
    def status(self) -> int:
        """The response's status code."""
        return int(self.head.split(b" ", 2)[1])

    def header(self, name: str) -> str | None:
        """A response header field's value."""
        for line in self.head.decode("latin-1").split("\r\n")[1:]:
            field, _, value = line.partition(":")
            if field.strip().lower() == name.lower():
                return value.strip()
        return None

    async def next_event(self) -> Event | None:
        """The next event (position and gap events included), or ``None`` at the end of the
        stream; heartbeats are counted and skipped."""
        while True:
            while self._items:
                item = self._items.pop(0)
                if isinstance(item, Event):
                    return item
                if isinstance(item, Comment):
                    self.comments += 1
            data = await self._reader.read(65536)
            if not data:
                self.is_ended = True
                return None
            self._items += self._parser.feed(data)

    async def read_data(self, count: int, timeout: float = 15.0) -> list[Event]:
        """The next ``count`` events that are not position events (gap events count), each
        within ``timeout`` seconds.

        Raises:
            AssertionError: the stream ended first.
        """
        events: list[Event] = []
        while len(events) < count:
            event = await asyncio.wait_for(self.next_event(), timeout)
            assert event is not None, f"the stream ended after {events}"
            if event.event != POSITION_EVENT_TYPE:
                events.append(event)
        return events

    async def close(self) -> None:
        """Close the connection."""
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
