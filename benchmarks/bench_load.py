"""Load benchmark: many concurrent SSE clients on loopback, one broadcast stream.

    python -m benchmarks.bench_load --clients 10000 --events 20
    python -m benchmarks.bench_load --clients 2000 --baseline /tmp/before --servers sse_core

For each server, in its own process -- sse_core's asyncio ``EventStreamServer``,
sse-starlette under uvicorn on the same workload, and (``asyncio-floor``, on request) the
least an asyncio server can do: one ``transport.write`` of one prebuilt chunk per client
per event -- connect ``--clients`` clients, publish ``--events`` events of about ``--size``
bytes at ``--rate`` per second, and measure

- memory per idle connection: the server's RSS growth from before the clients to all of
  them connected and idle, divided by the number of clients;
- CPU per 1,000 deliveries (events x clients): the server process's CPU time while it
  broadcasts, user and system apart (system is mostly the kernel's TCP: on loopback it
  carries the receiving side's work too);
- latency from publish to receipt, p50 and p99 (each event carries its publish time on the
  shared monotonic clock), and how long one publish call takes (the median): the fan-out's
  own part of it, since a publish writes to every socket that takes bytes before it returns
  (sse-starlette's only queues: its writes come later, in each stream's task).

``--baseline DIR`` runs sse_core a second time from the source tree ``DIR`` (a checkout
of an earlier commit, its C accelerator built or copied in): before and after in one run.
``--profile PATH`` writes a cProfile of the (current) sse_core server's publishing phase.
``--repeat N`` runs N rounds, the servers interleaved, and reports each figure's median:
on a shared machine the load moves between runs.

The clients speak HTTP/1.1 on raw sockets (``--http 1.0``: a close-delimited body instead
of chunks). By default they are lean (``benchmarks/_lean_clients.py``): one ``epoll`` loop
over non-blocking sockets in a client process (``--client-processes N``: N of them), a
minimal chunk and event scanner, the receipt time read once per batch of reads (when the
client process had read the socket). ``--client parser`` measures with the first clients
instead: an asyncio protocol per connection in this process, a chunk decoder and
sse_core's ``Parser``. Either checks every delivery: each client must get every event of
the window once and in order (the sequence the publisher puts after the time), and every
client the same id for the same event; the counts are printed. Their CPU time per 1,000
deliveries is printed too ("clients' CPU"): it shares the machine's cores with the server.
Every server faces the same clients, so the client side's own cost weighs on all alike.
Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from benchmarks import _lean_clients
from sse_core import Event, Parser

SERVERS = ("sse_core", "sse-starlette", "asyncio-floor")
DEFAULT_SERVERS = ("sse_core", "sse-starlette")
BASELINE = "sse_core@baseline"
_HERE = Path(__file__).resolve()
_ROOT = _HERE.parent.parent


# --- the servers (each runs in its own process: `--serve NAME`) ---------------------------


def _stats(subscribers: int) -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return {
        "rss": rss,
        "user": usage.ru_utime,
        "sys": usage.ru_stime,
        "subscribers": subscribers,
    }


async def _command_loop(
    publish: Callable[[str], object],
    subscribers: Callable[[], int],
    port: int,
    profile_path: str | None = None,
) -> None:
    """Read commands on stdin: ``stats``, ``publish COUNT RATE SIZE``, ``quit``."""
    loop = asyncio.get_running_loop()
    profile = cProfile.Profile() if profile_path else None
    print(json.dumps({"port": port}), flush=True)
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == "quit":
            if profile is not None and profile_path:
                profile.dump_stats(profile_path)
            return
        if line[0] == "stats":
            print(json.dumps(_stats(subscribers())), flush=True)
        elif line[0] == "publish":
            count, rate, size = int(line[1]), float(line[2]), int(line[3])
            started = time.monotonic()
            if profile is not None:
                profile.enable()
            durations, cpu_durations = [], []
            for n in range(count):
                due = started + n / rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                now, cpu = time.monotonic(), time.thread_time()
                publish(f"{now:.6f} {n} " + "x" * size)
                durations.append(time.monotonic() - now)
                cpu_durations.append(time.thread_time() - cpu)
            if profile is not None:
                profile.disable()
            print(json.dumps({
                "published": count, "publish_s": statistics.median(durations),
                "publish_cpu_s": statistics.median(cpu_durations),
            }), flush=True)


async def _serve_sse_core(profile_path: str | None) -> None:
    from sse_core import ServerConfig
    from sse_core.adapters.asyncio import EventStreamServer
    from sse_core.state import ReplayConfig, ReplayLog

    server = EventStreamServer(
        ReplayLog(ReplayConfig(max_events=1000)),
        config=ServerConfig(heartbeat_interval=15.0, is_compression_enabled=False),
    )
    await server.start("127.0.0.1", 0)
    try:
        await _command_loop(
            lambda data: server.publish(Event(data=data)),
            lambda: len(server.broadcaster),
            server.address[1],
            profile_path,
        )
    finally:
        await server.aclose(grace=0.0)


async def _serve_sse_starlette() -> None:
    import uvicorn
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    queues: set[asyncio.Queue[str]] = set()
    counter = 0

    async def events(request: Request) -> EventSourceResponse:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=10_000)
        queues.add(queue)

        async def stream() -> AsyncIterator[str]:
            try:
                while True:
                    yield await queue.get()
            finally:
                queues.discard(queue)

        return EventSourceResponse(stream(), ping=15)

    def publish(data: str) -> None:
        nonlocal counter
        counter += 1
        # The same wire text as sse_core's (an id and the data), built once per event.
        item = {"id": str(counter), "data": data}
        for queue in list(queues):
            if not queue.full():
                queue.put_nowait(item)  # type: ignore[arg-type]

    app = Starlette(routes=[Route("/events", events)])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="error", backlog=4096, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        await _command_loop(publish, lambda: len(queues), port)
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 10)


class _FloorProtocol(asyncio.Protocol):
    """The floor's connection: read the request head, answer a fixed head, then only take
    the writes of the publisher."""

    def __init__(self, streams: dict[asyncio.Transport, bool]) -> None:
        self._streams = streams
        self._head = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._transport is None or self._transport in self._streams:
            return
        self._head += data
        if b"\r\n\r\n" not in self._head:
            return
        is_chunked = b" HTTP/1.1\r\n" in self._head.split(b"\r\n\r\n", 1)[0]
        framing = b"Transfer-Encoding: chunked" if is_chunked else b"Connection: close"
        self._transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            + framing + b"\r\n\r\n"
        )
        self._streams[self._transport] = is_chunked

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._streams.pop(self._transport, None)


async def _serve_floor() -> None:
    """The least an asyncio server does per delivery: one write of bytes built once."""
    streams: dict[asyncio.Transport, bool] = {}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _FloorProtocol(streams), "127.0.0.1", 0, backlog=4096
    )
    counter = 0

    def publish(data: str) -> None:
        nonlocal counter
        counter += 1
        body = f"id: {counter}\ndata: {data}\n\n".encode()
        chunk = b"%x\r\n%b\r\n" % (len(body), body)
        for transport, is_chunked in streams.items():
            transport.write(chunk if is_chunked else body)

    try:
        await _command_loop(publish, lambda: len(streams), server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for transport in list(streams):
            transport.abort()


# --- the clients ---------------------------------------------------------------------------


class _Dechunker:
    """A chunked body's data (RFC 9112 section 7.1), fed in pieces; chunk extensions and
    trailers are not expected (no server here sends them)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data_left = 0  # bytes of the current chunk's data still to come
        self._crlf_left = 0  # bytes of the CRLF after it
        self.is_done = False

    def feed(self, data: bytes) -> bytes:
        buffer, position, out = self._buffer + data, 0, []
        while not self.is_done:
            if self._data_left:
                piece = buffer[position : position + self._data_left]
                out.append(piece)
                position += len(piece)
                self._data_left -= len(piece)
                if self._data_left:
                    break
                self._crlf_left = 2
            if self._crlf_left:
                skipped = min(self._crlf_left, len(buffer) - position)
                position += skipped
                self._crlf_left -= skipped
                if self._crlf_left:
                    break
            end = buffer.find(b"\r\n", position)
            if end < 0:
                break
            size = int(buffer[position:end].split(b";")[0], 16)
            position = end + 2
            if size == 0:
                self.is_done = True
            self._data_left = size
        self._buffer = buffer[position:]
        return b"".join(out)


class _LoadClient(asyncio.Protocol):
    """One raw client: sends its request, decodes the body with sse_core's ``Parser``,
    records latencies and each stamped event's sequence and id (``seen``)."""

    def __init__(self, request: bytes, latencies: list[float], done: Callable[[], None]) -> None:
        self._request = request
        self._latencies = latencies
        self._done = done
        self._parser = Parser()
        self._head = b""
        self._dechunker: _Dechunker | None = None
        self.is_streaming = False
        self.received = 0
        self.seen: list[tuple[int, str]] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if not self.is_streaming:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._head[:end].lower()
            data = self._head[end + 4 :]
            self._head = b""
            self.is_streaming = True
            if b"\r\ntransfer-encoding: chunked" in head:
                self._dechunker = _Dechunker()
        if self._dechunker is not None:
            data = self._dechunker.feed(data)
        now = time.monotonic()
        for item in self._parser.feed(data):
            if isinstance(item, Event) and item.data[:1].isdigit():
                stamp, sequence, _ = item.data.split(" ", 2)
                self._latencies.append(now - float(stamp))
                self.seen.append((int(sequence), item.id or ""))
                self.received += 1
                self._done()


async def _connect_all(
    port: int, count: int, http: str, latencies: list[float], done: Callable[[], None]
) -> list[_LoadClient]:
    loop = asyncio.get_running_loop()
    request = (
        f"GET /events HTTP/{http}\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        "Cache-Control: no-cache\r\n\r\n"
    ).encode()
    clients: list[_LoadClient] = []
    batch = 250
    for start in range(0, count, batch):
        results = await asyncio.gather(*[
            loop.create_connection(
                lambda: _LoadClient(request, latencies, done), "127.0.0.1", port
            )
            for _ in range(min(batch, count - start))
        ])
        clients.extend(protocol for _, protocol in results)
    return clients


def _own_cpu() -> tuple[float, float]:
    """This process's CPU time so far: user + system, and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime


class ParserClients:
    """The full-parser clients (``--client parser``): an asyncio protocol per connection in
    this process, a chunk decoder and sse_core's ``Parser``, the receipt time read per read.
    The same interface as :class:`benchmarks._lean_clients.LeanClients`; the CPU figure is
    this whole process's."""

    def __init__(self) -> None:
        self.protocols: list[_LoadClient] = []
        self._latencies: list[float] = []
        self._received = 0
        self._expected: float = float("inf")
        self._all_in = asyncio.Event()
        self._events = 0
        self._cpu_start = self._cpu_end = (0.0, 0.0)

    def _done(self) -> None:
        self._received += 1
        if self._received >= self._expected and not self._all_in.is_set():
            self._cpu_end = _own_cpu()
            self._all_in.set()

    async def connect(self, port: int, count: int, http: str = "1.1") -> None:
        """Open ``count`` streams to ``port``."""
        self.protocols += await _connect_all(port, count, http, self._latencies, self._done)

    def streaming(self) -> int:
        """How many streams have had their response head."""
        return sum(1 for p in self.protocols if p.is_streaming)

    def warmed(self) -> int:
        """How many streams have had a stamped event (since the window's start)."""
        return sum(1 for p in self.protocols if p.received)

    def least_received(self) -> int:
        """The fewest stamped events any stream has had (since the window's start)."""
        return min((p.received for p in self.protocols), default=0)

    async def start_window(self, events: int) -> None:
        """From now, each stream must get sequences ``0 .. events - 1``, once, in order."""
        for protocol in self.protocols:
            protocol.received = 0
            protocol.seen.clear()
        self._latencies.clear()
        self._events, self._received = events, 0
        self._expected = events * len(self.protocols)
        self._all_in.clear()
        self._cpu_start = self._cpu_end = _own_cpu()

    async def wait(self, timeout: float) -> bool:
        """Until every stream has the window's events, or ``timeout`` seconds."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._all_in.wait(), timeout)
        if not self._all_in.is_set():
            self._cpu_end = _own_cpu()
        return self._all_in.is_set()

    def result(self) -> _lean_clients.Window:
        """The window's figures (the same checks as the lean clients')."""
        window = _lean_clients.Window(
            clients=len(self.protocols), events=self._events, delivered=len(self._latencies),
            cpu_s=self._cpu_end[0] - self._cpu_start[0],
            sys_s=self._cpu_end[1] - self._cpu_start[1], latencies=list(self._latencies),
        )
        for protocol in self.protocols:
            sequences = [sequence for sequence, _ in protocol.seen]
            ids = [event_id for _, event_id in protocol.seen]
            repeated = sum(1 for a, b in itertools.pairwise(ids) if a and a == b)
            wrong = sum(1 for due, got in enumerate(sequences) if due != got)
            window.errors += repeated + wrong
            if repeated + wrong and not window.example:
                window.example = f"sequences {sequences[:10]} ids {ids[:10]}"
            window.complete += sequences == list(range(self._events)) and not repeated
            for sequence, event_id in protocol.seen:
                window.ids.setdefault(sequence, set()).add(event_id)
            window.broken += protocol.transport is None or protocol.transport.is_closing()
        return window

    def close(self) -> None:
        """Close every stream."""
        for protocol in self.protocols:
            if protocol.transport is not None:
                protocol.transport.abort()


#: The load benchmarks' clients (``--client``): lean (the default) or the full parser.
CLIENTS = ("lean", "parser")


@dataclasses.dataclass(frozen=True)
class ClientChoice:
    """Which clients measure a run: ``kind`` of :data:`CLIENTS`; for lean ones, how many
    ``processes`` and how long each waits after a batch of reads (``batch_wait_ms``: fewer
    wake-ups, at the price of up to that much later receipt times)."""

    kind: str = "lean"
    processes: int = 1
    batch_wait_ms: float = 0.0

    def make(self) -> ParserClients | _lean_clients.LeanClients:
        """The clients, ready to connect."""
        if self.kind == "parser":
            return ParserClients()
        if self.kind == "lean":
            return _lean_clients.LeanClients(self.processes, self.batch_wait_ms / 1000)
        raise ValueError(f"unknown clients {self.kind!r}; choose from {', '.join(CLIENTS)}")

    def describe(self) -> str:
        """One line that says which clients measure, and what their receipt time is."""
        if self.kind == "parser":
            return ("clients: full parser (asyncio protocols, sse_core's Parser) in the"
                    " benchmark's process; receipt time read at each read")
        wait = f", {self.batch_wait_ms:g} ms wait after each batch" if self.batch_wait_ms else ""
        return (f"clients: lean (epoll over raw sockets) in {self.processes} process(es){wait};"
                " receipt time read once per epoll batch after its reads: when the client"
                " process had read the socket")


#: The default clients: lean ones in one process.
LEAN = ClientChoice()


class _Server:
    def __init__(self, name: str, source: Path | None, profile: str | None) -> None:
        serve = "sse_core" if name == BASELINE else name
        command = [sys.executable, str(_HERE), "--serve", serve]
        if profile and name == "sse_core":
            command += ["--profile", profile]
        # Run as a script, with the sse_core source tree to serve first on the path (a
        # baseline's), then this checkout's (the benchmarks package this file imports).
        path = [str(source)] if source is not None else []
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(_ROOT)])}
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
            # uvicorn's forced exit prints the cancelled streams' tracebacks: not our news.
            stderr=subprocess.DEVNULL if name == "sse-starlette" else None,
        )
        self.port = int(self.read()["port"])

    def read(self) -> dict[str, float]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the server process ended")
        return json.loads(line)  # type: ignore[no-any-return]

    def ask(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def stats(self) -> dict[str, float]:
        self.ask("stats")
        return self.read()

    def stop(self) -> None:
        try:
            self.ask("quit")
            self.process.wait(timeout=15)
        except Exception:
            self.process.kill()
            self.process.wait()


async def run_one(
    name: str,
    clients: int,
    events: int,
    rate: float,
    size: int,
    *,
    http: str = "1.1",
    source: Path | None = None,
    profile: str | None = None,
    client: ClientChoice = LEAN,
) -> dict[str, Any]:
    """Serve ``clients`` with the server ``name`` (from the source tree ``source``, for the
    baseline) and measure it with the clients ``client``; see the module's documentation."""
    server = _Server(name, source, profile)
    expected = clients * events
    pool = client.make()
    try:
        idle = server.stats()
        started = time.monotonic()
        await pool.connect(server.port, clients, http)
        while True:  # every request read and subscribed
            connected = server.stats()
            if connected["subscribers"] >= clients:
                break
            await asyncio.sleep(0.2)
        connect_time = time.monotonic() - started
        await asyncio.sleep(0.5)
        connected = server.stats()
        await pool.start_window(events)
        server.ask(f"publish {events} {rate} {size}")
        await pool.wait(events / rate + 60)
        # The "published" line came first; drain it, then the final stats.
        published = await asyncio.get_running_loop().run_in_executor(None, server.read)
        after = server.stats()
        load = os.getloadavg()[0]
        window = pool.result()
    finally:
        pool.close()
        server.stop()
    per_1000 = 1000 * 1000 / expected  # seconds of CPU -> ms per 1,000 deliveries
    user = (after["user"] - connected["user"]) * per_1000
    system = (after["sys"] - connected["sys"]) * per_1000
    return {
        "clients": clients,
        "connect_s": connect_time,
        "mem_per_conn_kib": (connected["rss"] - idle["rss"]) / clients / 1024,
        "cpu_ms_per_1000": user + system,
        "user_ms_per_1000": user,
        "sys_ms_per_1000": system,
        "publish_ms": published["publish_s"] * 1000,
        "publish_cpu_ms": published["publish_cpu_s"] * 1000,
        **window_figures(window, expected),
        "load": load,
    }


def window_figures(window: _lean_clients.Window, expected: int) -> dict[str, Any]:
    """The clients' figures of one run: what was delivered and checked, the latency
    quantiles, and the clients' CPU time per 1,000 deliveries."""
    ordered = sorted(window.latencies)

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    return {
        "delivered": window.delivered,
        "expected": expected,
        "complete_clients": window.complete,
        "errors": window.errors,
        "broken": window.broken,
        "first_error": window.example,
        "most_ids_per_event": window.most_ids_per_event,
        "clients_cpu_ms_per_1000": window.cpu_s * 1000 * 1000 / expected,
        "clients_sys_ms_per_1000": window.sys_s * 1000 * 1000 / expected,
        "reads_per_batch": window.reads / window.batches if window.batches else float("nan"),
        "deliveries_per_read": window.delivered / window.reads if window.reads else float("nan"),
        "p50_ms": quantile(0.50) * 1000,
        "p99_ms": quantile(0.99) * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000 if ordered else float("nan"),
    }


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over several runs of one server (the checks' counts: the worst
    run's; a text: the first run's that has any; a list: the last run's)."""
    worst = {"delivered": min, "complete_clients": min, "errors": max, "broken": max,
             "most_ids_per_event": max}
    merged: dict[str, Any] = {}
    for key in runs[0]:
        values = [run[key] for run in runs]
        if key in worst:
            merged[key] = worst[key](values)
        elif isinstance(values[0], str):
            merged[key] = next((v for v in values if v), "")
        elif not isinstance(values[0], (int, float)):
            merged[key] = values[-1]
        else:
            merged[key] = statistics.median(values)
    return merged


def _print_result(name: str, result: dict[str, Any]) -> None:
    checks = (
        f" ({result['complete_clients']:.0f} clients had every event once, in order;"
        f" {result['errors']:.0f} out of order or repeated, {result['broken']:.0f} broken"
        + (f": {result['first_error']}" if result["first_error"] else "") + ")"
    )
    print(
        f"{name:18s} delivered {result['delivered']:.0f}/{result['expected']:.0f}{checks}\n"
        f"{'':18s}"
        f"  mem/idle conn {result['mem_per_conn_kib']:.1f} KiB"
        f"  CPU/1000 deliveries {result['cpu_ms_per_1000']:.2f} ms"
        f" (user {result['user_ms_per_1000']:.2f} + sys {result['sys_ms_per_1000']:.2f})"
        f"  publish() {result['publish_ms']:.1f} ms (CPU {result['publish_cpu_ms']:.1f})"
        f"  p50 {result['p50_ms']:.1f} ms p99 {result['p99_ms']:.1f} ms"
        f"  clients' CPU/1000 {result['clients_cpu_ms_per_1000']:.2f} ms"
        f" (sys {result['clients_sys_ms_per_1000']:.2f};"
        f" {result['deliveries_per_read']:.2f} deliveries per read)"
        f"  load {result['load']:.1f}",
        flush=True,
    )


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def add_client_options(parser: argparse.ArgumentParser, processes: int = 1) -> None:
    """The clients' options: ``--client``, ``--client-processes`` (``processes`` by
    default), ``--client-batch-wait``."""
    parser.add_argument("--client", choices=CLIENTS, default="lean",
                        help="lean: epoll over raw sockets, a minimal scanner (default);"
                             " parser: asyncio protocols and sse_core's Parser")
    parser.add_argument("--client-processes", type=int, default=processes, metavar="N",
                        help="lean clients: spread over N processes (their CPU is summed;"
                             f" default {processes})")
    parser.add_argument("--client-batch-wait", type=float, default=0.0, metavar="MS",
                        help="lean clients: sleep MS after each batch of reads (fewer"
                             " wake-ups; receipt times up to MS later)")


def client_choice(args: argparse.Namespace) -> ClientChoice:
    """The clients the command line chose."""
    return ClientChoice(args.client, args.client_processes, args.client_batch_wait)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--rate", type=float, default=5.0, help="events per second")
    parser.add_argument("--size", type=int, default=100, help="bytes of data per event")
    parser.add_argument("--http", choices=("1.1", "1.0"), default="1.1",
                        help="the clients' HTTP version (1.0: no chunks)")
    parser.add_argument("--servers", default=",".join(DEFAULT_SERVERS),
                        help=f"comma-separated, of {', '.join(SERVERS)}")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="also run sse_core from this source tree (before/after)")
    parser.add_argument("--profile", metavar="PATH",
                        help="cProfile the sse_core server's publishing into PATH")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds (servers interleaved); the medians are reported")
    parser.add_argument("--json", metavar="PATH", help="write the results to PATH as JSON")
    add_client_options(parser)
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _raise_fd_limit()
    if args.serve == "sse_core":
        asyncio.run(_serve_sse_core(args.profile))
        return 0
    if args.serve == "sse-starlette":
        asyncio.run(_serve_sse_starlette())
        return 0
    if args.serve == "asyncio-floor":
        asyncio.run(_serve_floor())
        return 0
    names = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SERVERS))
    if unknown:
        parser.error(f"unknown servers {unknown}; choose from {', '.join(SERVERS)}")
    if args.baseline is not None:
        if not (args.baseline / "sse_core" / "__init__.py").is_file():
            parser.error(f"--baseline {args.baseline}: no sse_core package there")
        names.insert(names.index("sse_core") if "sse_core" in names else 0, BASELINE)

    print(
        f"{args.clients} clients (HTTP/{args.http}), {args.events} events of {args.size} B"
        f" at {args.rate:g}/s, loopback, {os.cpu_count()} cores,"
        f" load {os.getloadavg()[0]:.1f}\n{client_choice(args).describe()}\n"
    )
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_number in range(args.repeat):
        if args.repeat > 1:
            print(f"round {round_number + 1} of {args.repeat}", flush=True)
        for name in names:  # interleaved: a change in the machine's load hits all alike
            result = asyncio.run(run_one(
                name, args.clients, args.events, args.rate, args.size, http=args.http,
                source=args.baseline.resolve() if name == BASELINE else None,
                profile=args.profile, client=client_choice(args),
            ))
            rounds[name].append(result)
            _print_result(name, result)
    results = {name: _median(runs) for name, runs in rounds.items()}
    if args.repeat > 1:
        print(f"\nmedians of {args.repeat} rounds")
        for name, result in results.items():
            _print_result(name, result)
    if "sse_core" in results:
        ours = results["sse_core"]
        print()
        for name, theirs in results.items():
            if name != "sse_core":
                print(
                    f"{name} / sse_core:"
                    f"  mem/conn {theirs['mem_per_conn_kib'] / ours['mem_per_conn_kib']:.2f}x"
                    f"  CPU {theirs['cpu_ms_per_1000'] / ours['cpu_ms_per_1000']:.2f}x"
                    f"  p50 {theirs['p50_ms'] / ours['p50_ms']:.2f}x"
                    f"  p99 {theirs['p99_ms'] / ours['p99_ms']:.2f}x"
                )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
