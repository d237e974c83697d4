"""Servers under attack, and the attackers: what ``bench_attack`` and ``tests/adapters/test_attack``
share.

Each server runs in a process of its own (``python -m benchmarks._attack_servers NAME``), so
that its memory can be read alone:

- ``asyncio``, ``trio``, ``sync``: sse_core's ``EventStreamServer`` of that adapter, defaults;
- ``asgi``: sse_core's ASGI ``EventStream`` (defaults) under a real uvicorn;
- ``sse-starlette``: sse-starlette under uvicorn, the peer baseline (it keeps no replay log and
  ignores ``Last-Event-ID``).

The process fills its replay log to the defaults (:data:`LOG_EVENTS` events of about 1 KiB:
about 1 MiB), prints one JSON line (``port``, ``epoch``, ``oldest_id``, ``last_id``), then
publishes one event every :data:`PUBLISH_INTERVAL` seconds on its own event loop (or, for the
sync server, its own thread) and records how late each publish ran against that schedule.
A control thread answers on stdin, even while the event loop is stalled:

- ``stats``: one JSON line: ``rss`` and ``hwm`` (VmRSS and VmHWM of ``/proc/self/status``, in
  bytes), ``subscribers``, and the publisher since the last ``window``: ``published``,
  ``window_s``, ``late_max`` and ``late_p99`` (seconds behind schedule, the publish that is
  due but has not run yet included), ``stall_max`` and ``stall_p99`` (seconds one publish
  was held up, see :class:`_Schedule`), ``publish_max`` (the longest publish call),
  ``last_id`` and ``oldest_id`` of the log;
- ``window``: start a new measuring window (the schedule starts again from now);
- ``quit`` or the end of stdin: exit at once.

The attacker side (:class:`ServerProcess`, :func:`open_non_readers`, :class:`Reader`,
:func:`run_attack`) runs in the benchmark's or the test's process. Everything is on
127.0.0.1, every wait is bounded, and every process and socket is closed by its owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "LOG_EVENTS",
    "PUBLISH_INTERVAL",
    "SERVERS",
    "SSE_CORE_SERVERS",
    "AttackResult",
    "Reader",
    "ServerProcess",
    "attacked",
    "close_all",
    "open_non_readers",
    "raise_fd_limit",
    "request_bytes",
    "run_attack",
    "send_queue_bytes",
]

#: sse_core's four servers.
SSE_CORE_SERVERS = ("asyncio", "trio", "sync", "asgi")
#: Every server this module can run: sse_core's and the peer baseline.
SERVERS = (*SSE_CORE_SERVERS, "sse-starlette")
#: Events put into the log before the attack: the default ``ReplayConfig.max_events``.
LOG_EVENTS = 1000
#: Characters of data per event: with its id each event is about 1 KiB on the wire, so a full
#: log is about 1 MiB (under the default ``max_bytes``, so ``max_events`` is what bounds it).
EVENT_DATA = 1000
#: Seconds between two publishes (10 per second).
PUBLISH_INTERVAL = 0.1

_ROOT = Path(__file__).resolve().parent.parent
# The data of a published event (:func:`_event_data`), and its line on the wire.
_PUBLISHED_DATA = re.compile(r"\d{8} ")
_PUBLISHED_LINE = re.compile(rb"^data: \d{8} ", re.MULTILINE)
_MIB = 1 << 20


def raise_fd_limit() -> None:
    """Raise this process's open-files limit to its hard limit (thousands of sockets)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _event_data(n: int) -> str:
    head = f"{n:08d} "
    return head + "x" * (EVENT_DATA - len(head))


# --- inside the server process ------------------------------------------------------------


class _Schedule:
    """The publisher's timetable and what it recorded, shared with the control thread.

    Two measures of delay: *lateness*, how far behind its schedule a publish ran (it
    accumulates when publishing cannot keep up), and *stall*, how long one publish was held
    up: from when it could have started (its due time, or the end of the previous publish
    if that was later) to its end. A stalled event loop (or, for the sync server, a lock
    held by the server's thread) shows in both; a server that is merely too slow for the
    rate shows in lateness only.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._start = time.monotonic()
        self._n = 0
        self._previous_end = self._start
        self._lateness: list[float] = []
        self._stalls: list[float] = []
        self._durations: list[float] = []
        self.last_id = ""
        self.oldest_id = ""

    def restart(self) -> None:
        with self._lock:
            self._generation += 1
            self._start = self._previous_end = time.monotonic()
            self._n = 0
            self._lateness = []
            self._stalls = []
            self._durations = []

    def next_due(self) -> tuple[int, float]:
        """The generation and due time of the next publish."""
        with self._lock:
            return self._generation, self._start + self._n * PUBLISH_INTERVAL

    def run(self, generation: int, due: float, publish: Callable[[str], tuple[str, str]]) -> None:
        """Publish now and record how late it ran, how long it was held up and took."""
        started = time.monotonic()
        last_id, oldest_id = publish(_event_data(self._n))
        ended = time.monotonic()
        with self._lock:
            self.last_id, self.oldest_id = last_id, oldest_id
            if generation != self._generation:  # a new window began meanwhile
                return
            self._n += 1
            if len(self._lateness) < 100_000:
                self._lateness.append(started - due)
                self._stalls.append(ended - max(due, self._previous_end))
                self._durations.append(ended - started)
            self._previous_end = ended

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            due = self._start + self._n * PUBLISH_INTERVAL
            # The publish due now counts too: the loop may be stalled at this moment.
            lateness = sorted([*self._lateness, max(0.0, now - due)])
            stalls = sorted([*self._stalls, max(0.0, now - max(due, self._previous_end))])
            return {
                "published": len(self._lateness),
                "window_s": now - self._start,
                "late_max": lateness[-1],
                "late_p99": _p99(lateness),
                "stall_max": stalls[-1],
                "stall_p99": _p99(stalls),
                "publish_max": max(self._durations, default=0.0),
                "last_id": self.last_id,
                "oldest_id": self.oldest_id,
            }


def _p99(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _memory() -> dict[str, int]:
    found: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) * 1024
    return {"rss": found["VmRSS"], "hwm": found["VmHWM"]}


def _serve_control(schedule: _Schedule, subscribers: Callable[[], int]) -> None:
    """Answer ``stats`` and ``window`` on stdin from a thread of its own; exit on ``quit``."""

    def loop() -> None:
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                reply = {**_memory(), "subscribers": subscribers(), **schedule.snapshot()}
                print(json.dumps(reply), flush=True)
            elif command == "window":
                schedule.restart()
                print(json.dumps({"window": True}), flush=True)
            elif command == "quit":
                break
        os._exit(0)  # no clean shutdown: thousands of stuck clients would only slow it

    threading.Thread(target=loop, name="control", daemon=True).start()


def _announce(port: int, schedule: _Schedule, epoch: str) -> None:
    print(json.dumps({"port": port, "epoch": epoch, "last_id": schedule.last_id,
                      "oldest_id": schedule.oldest_id, "pid": os.getpid()}), flush=True)


def _fill(publish: Callable[[str], tuple[str, str]], schedule: _Schedule) -> None:
    for n in range(LOG_EVENTS):
        schedule.last_id, schedule.oldest_id = publish(_event_data(n))


def _ids(log: Any, stored: Any) -> tuple[str, str]:
    events = log.events()
    return stored.id, events[0].id if events else ""


async def _publish_asyncio(publish: Callable[[str], tuple[str, str]], schedule: _Schedule) -> None:
    while True:
        generation, due = schedule.next_due()
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        schedule.run(generation, due, publish)


async def _run_asyncio() -> None:
    from sse_core import Event
    from sse_core.adapters.asyncio import EventStreamServer

    server = EventStreamServer()
    log = server.broadcaster.replay_log

    def publish(data: str) -> tuple[str, str]:
        return _ids(log, server.publish(Event(data=data)))

    schedule = _Schedule()
    _fill(publish, schedule)
    await server.start("127.0.0.1", 0)
    _serve_control(schedule, lambda: len(server.broadcaster))
    _announce(server.address[1], schedule, log.config.epoch)
    schedule.restart()
    await _publish_asyncio(publish, schedule)


def _run_trio() -> None:
    import trio

    from sse_core import Event
    from sse_core.adapters.trio import EventStreamServer

    server = EventStreamServer()
    log = server.broadcaster.replay_log

    def publish(data: str) -> tuple[str, str]:
        return _ids(log, server.publish(Event(data=data)))

    schedule = _Schedule()

    async def main() -> None:
        _fill(publish, schedule)
        async with trio.open_nursery() as nursery:
            _host, port = await nursery.start(server.serve, "127.0.0.1", 0)
            _serve_control(schedule, lambda: len(server.broadcaster))
            _announce(port, schedule, log.config.epoch)
            schedule.restart()
            while True:
                generation, due = schedule.next_due()
                await trio.sleep(max(0.0, due - time.monotonic()))
                schedule.run(generation, due, publish)

    trio.run(main)


def _run_sync() -> None:
    from sse_core import Event
    from sse_core.adapters.sync import EventStreamServer

    server = EventStreamServer()
    log = server.broadcaster.replay_log

    def publish(data: str) -> tuple[str, str]:
        # Only publish() changes the log, and it runs in this thread.
        return _ids(log, server.publish(Event(data=data)))

    schedule = _Schedule()
    _fill(publish, schedule)
    server.start("127.0.0.1", 0)
    _serve_control(schedule, lambda: len(server.broadcaster))
    _announce(server.address[1], schedule, log.config.epoch)
    schedule.restart()
    while True:  # the publisher is this thread; the server serves from its own
        generation, due = schedule.next_due()
        time.sleep(max(0.0, due - time.monotonic()))
        schedule.run(generation, due, publish)


async def _run_uvicorn(app: Any, publish: Callable[[str], tuple[str, str]],
                       subscribers: Callable[[], int], epoch: str) -> None:
    import uvicorn

    schedule = _Schedule()
    _fill(publish, schedule)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="error", backlog=4096, lifespan="off",
        loop="asyncio",
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    _serve_control(schedule, subscribers)
    _announce(port, schedule, epoch)
    schedule.restart()
    await _publish_asyncio(publish, schedule)


async def _run_asgi() -> None:
    from sse_core import Event
    from sse_core.adapters.asgi import EventStream

    app = EventStream()
    log = app.broadcaster.replay_log

    def publish(data: str) -> tuple[str, str]:
        return _ids(log, app.publish(Event(data=data)))

    await _run_uvicorn(app, publish, lambda: len(app.broadcaster), log.config.epoch)


async def _run_sse_starlette() -> None:
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    queues: set[asyncio.Queue[dict[str, str]]] = set()
    counter = 0

    async def events(request: Request) -> EventSourceResponse:
        queue: asyncio.Queue[dict[str, str]] = asyncio.Queue(maxsize=10_000)
        queues.add(queue)

        async def stream() -> AsyncIterator[dict[str, str]]:
            try:
                while True:
                    yield await queue.get()
            finally:
                queues.discard(queue)

        return EventSourceResponse(stream())

    def publish(data: str) -> tuple[str, str]:
        nonlocal counter
        counter += 1
        item = {"id": str(counter), "data": data}  # the same wire text as sse_core's
        for queue in list(queues):
            if not queue.full():
                queue.put_nowait(item)
        return str(counter), ""

    app = Starlette(routes=[Route("/events", events)])
    await _run_uvicorn(app, publish, lambda: len(queues), "")


def serve(name: str) -> None:
    """Run server ``name`` in this process until ``quit`` (see the module's documentation)."""
    raise_fd_limit()
    if name == "asyncio":
        asyncio.run(_run_asyncio())
    elif name == "trio":
        _run_trio()
    elif name == "sync":
        _run_sync()
    elif name == "asgi":
        asyncio.run(_run_asgi())
    elif name == "sse-starlette":
        asyncio.run(_run_sse_starlette())
    else:
        raise SystemExit(f"unknown server {name!r}; one of {', '.join(SERVERS)}")


# --- the attacker's side ------------------------------------------------------------------


class ServerProcess:
    """One server in a process of its own, driven over its stdin and stdout.

    Args:
        name: One of :data:`SERVERS`.
        timeout: Seconds any one answer may take.
    """

    def __init__(self, name: str, *, timeout: float = 60.0) -> None:
        self.name = name
        self._timeout = timeout
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._attack_servers", name],
            cwd=_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        try:
            self.info = self._read()
        except BaseException:
            self.stop()
            raise
        self.port = int(self.info["port"])
        self.epoch = str(self.info["epoch"])

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _read(self) -> dict[str, Any]:
        stdout = self._process.stdout
        assert stdout is not None
        answer: list[str] = []
        reader = threading.Thread(target=lambda: answer.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(self._timeout)
        if not answer or not answer[0]:
            raise RuntimeError(f"the {self.name} server did not answer within {self._timeout} s"
                               f" (exit code {self._process.poll()})")
        return json.loads(answer[0])  # type: ignore[no-any-return]

    def _ask(self, command: str) -> dict[str, Any]:
        stdin = self._process.stdin
        assert stdin is not None
        stdin.write(command + "\n")
        stdin.flush()
        return self._read()

    def stats(self) -> dict[str, Any]:
        """The server's memory, subscribers and publisher since the last :meth:`window`."""
        return self._ask("stats")

    def window(self) -> None:
        """Start a new measuring window for the publisher."""
        self._ask("window")

    def wait_for_subscribers(
        self, count: int, timeout: float, *, quiet: float = 3.0
    ) -> dict[str, Any]:
        """Poll until the server has ``count`` subscribers, or their number has not changed
        for ``quiet`` seconds (a server that refuses some), or ``timeout`` passes; the last
        stats."""
        deadline = time.monotonic() + timeout
        last_change, last_count = time.monotonic(), -1
        while True:
            stats = self.stats()
            now = time.monotonic()
            if stats["subscribers"] != last_count:
                last_change, last_count = now, stats["subscribers"]
            if last_count >= count or now >= deadline or now - last_change >= quiet:
                return stats
            time.sleep(0.2)

    def stop(self) -> None:
        """End the process (``quit``, then a kill if it does not go)."""
        with contextlib.suppress(OSError, ValueError):
            assert self._process.stdin is not None
            self._process.stdin.write("quit\n")
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


def send_queue_bytes(port: int) -> int:
    """Bytes the kernel holds unsent or unacknowledged in the send queues of every connection
    whose local port is ``port`` (the server's side; ``/proc/net/tcp``'s ``tx_queue``)."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, state, queues = fields[1], fields[3], fields[4]
                if state != "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # not LISTEN
                    total += int(queues.split(":")[0], 16)
    return total


def request_bytes(
    *, last_event_id: str | None = None, is_gzip: bool = False, http10: bool = False
) -> bytes:
    """The GET request of an EventSource (about 100 bytes with ``Last-Event-ID``)."""
    lines = [
        f"GET /events HTTP/1.{0 if http10 else 1}",
        "Host: 127.0.0.1",
        "Accept: text/event-stream",
        "Cache-Control: no-cache",
    ]
    if last_event_id is not None:
        lines.append(f"Last-Event-ID: {last_event_id}")
    if is_gzip:
        lines.append("Accept-Encoding: gzip")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def open_non_readers(
    port: int,
    count: int,
    request_for: Callable[[int], bytes],
    *,
    receive_buffer: int = 4096,
    batch: int = 100,
    pause: float = 0.0,
    timeout: float = 30.0,
    between_batches: Callable[[int], None] | None = None,
) -> list[socket.socket]:
    """Open ``count`` connections, send each its request, and never read: non-readers.

    Each socket's receive buffer is made small before connecting (so the kernel advertises
    a small window and the server's bytes stay on the server's side). Connections are opened
    ``batch`` at a time, ``pause`` seconds apart; ``request_for(i)`` gives connection ``i``'s
    request when its batch starts, and ``between_batches(opened)`` is called after each
    batch. A connection that fails or takes more than ``timeout`` seconds is left out.

    Returns:
        The open sockets; the caller closes them (:func:`close_all`).
    """

    async def one(request: bytes) -> socket.socket | None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout)
            await asyncio.wait_for(loop.sock_sendall(sock, request), timeout)
        except (OSError, asyncio.TimeoutError):
            sock.close()
            return None
        return sock

    async def run() -> list[socket.socket]:
        opened: list[socket.socket] = []
        for start in range(0, count, batch):
            requests = [request_for(i) for i in range(start, min(count, start + batch))]
            got = await asyncio.gather(*[one(request) for request in requests])
            opened += [sock for sock in got if sock is not None]
            if between_batches is not None:
                between_batches(len(opened))
            await asyncio.sleep(pause)
        return opened

    return asyncio.run(run())


def close_all(sockets: Sequence[socket.socket]) -> None:
    """Close sockets with a reset (``SO_LINGER`` 0), so nothing lingers in the kernel."""
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


class Reader:
    """A well-behaved EventSource client in a thread of its own: it reads everything.

    It connects without ``Last-Event-ID``, takes the log position the server gives a new
    client (the ``id:`` block that opens the body) and then every event's id.

    Args:
        port: The server's port.
        timeout: Seconds the connection may wait for bytes before the reader gives up.
    """

    def __init__(self, port: int, *, timeout: float = 60.0) -> None:
        import h11

        from sse_core import Parser

        self.position: str | None = None
        self.ids: list[str] = []
        self.error: str | None = None
        self._changed = threading.Condition()
        self._is_stopping = False
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._h11 = h11.Connection(h11.CLIENT)
        self._parser = Parser()
        self._body_start = b""
        self._thread = threading.Thread(target=self._read, name="reader", daemon=True)
        headers = [("Host", "127.0.0.1"), ("Accept", "text/event-stream"),
                   ("Cache-Control", "no-cache")]
        self._sock.sendall(self._h11.send(h11.Request(method="GET", target="/events",
                                                      headers=headers)) or b"")
        self._sock.sendall(self._h11.send(h11.EndOfMessage()) or b"")
        self._thread.start()

    def _read(self) -> None:
        import h11

        try:
            while not self._is_stopping:
                data = self._sock.recv(65536)
                self._h11.receive_data(data)
                while True:
                    event = self._h11.next_event()
                    if event is h11.NEED_DATA:
                        break
                    if isinstance(event, h11.Response) and event.status_code != 200:
                        raise RuntimeError(f"status {event.status_code}")
                    if isinstance(event, h11.Data):
                        self._on_body(bytes(event.data))
                    if isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                        raise RuntimeError("the stream ended")
        except Exception as error:  # whatever it is, problems() reports it
            if not self._is_stopping:
                self.error = f"{type(error).__name__}: {error}"
        finally:
            with self._changed:
                self._changed.notify_all()

    def _on_body(self, data: bytes) -> None:
        from sse_core import Event

        if self.position is None:
            # The position is the last id field before the block of the first published
            # event (an ``id:``-only block today; any block not carrying an event would do).
            self._body_start += data
            first = _PUBLISHED_LINE.search(self._body_start)
            if first is not None or len(self._body_start) >= 64 * 1024:
                end = self._body_start.rfind(b"\n\n", 0, first.start()) + 2 if first else None
                ids = re.findall(rb"^id: ?([^\r\n]*)", self._body_start[:end], re.MULTILINE)
                self.position = ids[-1].decode() if ids else ""
        items = self._parser.feed(data)
        with self._changed:
            self.ids += [
                item.id for item in items
                if isinstance(item, Event) and item.id is not None
                and _PUBLISHED_DATA.match(item.data)
            ]
            self._changed.notify_all()

    def wait_for(self, last_id: str, timeout: float) -> bool:
        """Wait until the reader has the event ``last_id`` (or an error, or ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while last_id not in self.ids[-50:] and self.error is None:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._changed.wait(left)
            return last_id in self.ids

    def close(self) -> None:
        """Stop reading and close the connection."""
        self._is_stopping = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(5)

    def problems(self) -> list[str]:
        """What is wrong with what the reader got: every event once, in order, from the
        position on (empty when all is well)."""
        found = [self.error] if self.error else []
        if not self.position:
            return [*found, "no log position at the start of the body"]
        epoch, _, start = self.position.rpartition("-")
        first = int(start) + 1
        for k, got in enumerate(self.ids):
            if got != f"{epoch}-{first + k}":
                found.append(f"event {k} after position {self.position} is {got},"
                             f" expected {epoch}-{first + k}")
                break
        return found


# --- one attack ---------------------------------------------------------------------------


class AttackResult:
    """What one attack did to one server."""

    def __init__(self, server: str, connected: int, before: dict[str, Any],
                 after: dict[str, Any], send_queue: int) -> None:
        self.server = server
        self.connected = connected
        self.before = before
        self.after = after
        self.send_queue = send_queue

    @property
    def rss_growth(self) -> int:
        """Bytes the server's RSS grew by."""
        return int(self.after["rss"]) - int(self.before["rss"])

    @property
    def held(self) -> int:
        """Memory the attack holds: RSS growth plus the kernel's send queues."""
        return self.rss_growth + self.send_queue

    @property
    def events_per_second(self) -> float:
        """Publishes per second in the window: 10 when every publish ran on time (the one
        due at the window's start included)."""
        scheduled = int(float(self.after["window_s"]) / PUBLISH_INTERVAL) + 1
        return float(self.after["published"]) / scheduled / PUBLISH_INTERVAL

    def row(self) -> dict[str, Any]:
        """The figures, in MiB and milliseconds."""
        return {
            "server": self.server,
            "connected": self.connected,
            "rss_before_mib": self.before["rss"] / _MIB,
            "rss_after_mib": self.after["rss"] / _MIB,
            "peak_mib": self.after["hwm"] / _MIB,
            "send_queue_mib": self.send_queue / _MIB,
            "held_mib": self.held / _MIB,
            "late_max_ms": self.after["late_max"] * 1000,
            "late_p99_ms": self.after["late_p99"] * 1000,
            "stall_max_ms": self.after["stall_max"] * 1000,
            "stall_p99_ms": self.after["stall_p99"] * 1000,
            "publish_max_ms": self.after["publish_max"] * 1000,
            "events_per_s": self.events_per_second,
        }


def run_attack(
    server: ServerProcess,
    count: int,
    request_for: Callable[[int], bytes],
    *,
    settle: float = 2.0,
    hold: float = 0.0,
    subscribe_timeout: float = 60.0,
    during: Callable[[int], None] | None = None,
    others: int = 0,
    batch: int = 100,
    pause: float = 0.0,
) -> tuple[AttackResult, list[socket.socket]]:
    """Open ``count`` non-reading connections against ``server`` and measure
    (:func:`open_non_readers`).

    The publisher's window starts just before the first connection. After every connection
    is subscribed (or ``subscribe_timeout``), ``settle`` seconds let the writes land; with
    ``hold`` the window then starts again and runs ``hold`` more seconds (a steady state:
    publishes per second). Memory is read at the end. ``during(opened)`` runs after each
    batch of connections (``batch`` at a time, ``pause`` seconds apart); ``others`` is how
    many other clients it subscribes meanwhile.

    Returns:
        The result and the attack's sockets, still open (the caller closes them, after
        anything else it wants to measure).
    """
    before = server.stats()
    server.window()
    baseline = int(before["subscribers"])
    sockets = open_non_readers(
        server.port, count, request_for, batch=batch, pause=pause, between_batches=during
    )
    server.wait_for_subscribers(baseline + len(sockets) + others, subscribe_timeout)
    time.sleep(settle)
    if hold:
        server.window()
        time.sleep(hold)
    after = server.stats()
    result = AttackResult(server.name, len(sockets), before, after, send_queue_bytes(server.port))
    return result, sockets


@contextlib.contextmanager
def attacked(sockets: list[socket.socket]) -> Iterator[list[socket.socket]]:
    """Close the attack's sockets when the block ends."""
    try:
        yield sockets
    finally:
        close_all(sockets)


if __name__ == "__main__":
    serve(sys.argv[1])
