"""Scale-out benchmark: SSE clients spread over several worker processes sharing one Redis.

    python -m benchmarks.bench_scaleout --clients 2000 --events 20
    python -m benchmarks.bench_scaleout --clients 4000 --kinds sse_core,sse-starlette-pubsub

Each server kind runs as ``--workers`` processes (4 by default) that share one
``redis-server`` (started here on a free loopback port in a temporary directory, without
persistence, unless ``--redis-url`` names one); a publisher process appends ``--events``
events of about ``--size`` bytes at ``--rate`` per second *through Redis*, and every worker
delivers each of them to its own clients:

- ``sse_core``: the asyncio ``EventStreamServer`` in each process, fed by a ``RedisFeed``
  (one shared Redis Streams log; the publisher appends with ``RedisLog.append``); the
  clients are spread evenly over the processes' ports, as a load balancer would;
- ``sse_core-asgi``: the ASGI ``EventStream`` with a ``RedisFeed`` under
  ``uvicorn --workers N`` (one port; the kernel hands each connection to a worker);
- ``sse-starlette-pubsub``: the usual multi-worker recipe, sse-starlette under
  ``uvicorn --workers N``: each worker subscribes once to a Redis pub/sub channel and copies
  what arrives into every request's queue, which the request's generator yields. Pub/sub
  keeps nothing: a client that reconnects has **no replay** (what was published meanwhile is
  lost without a word), where the sse_core kinds resume from the shared log.

Measured per kind, as ``benchmarks.bench_load`` does for one process, and with its clients
(lean by default, ``--client parser`` for the full-parser ones; ``--client-processes`` and
``--client-batch-wait`` as there), which check that every client gets every event once, in
order, and the same id for an event on every worker:

- CPU per 1,000 deliveries (events x clients): the sum over the worker processes of their
  CPU time (user + system, from ``/proc``) while the events go out, and Redis's own CPU time
  apart (its ``INFO cpu``); uvicorn's supervising process, idle meanwhile, is not counted;
- memory per idle connection: the workers' summed RSS growth from before the clients to all
  of them connected and idle, divided by the number of clients;
- latency from publish to receipt, p50 and p99 (each event carries the publisher's
  monotonic time, the same clock in every process);
- the machine's load average (1 minute) at the window's end: on a shared machine the
  latency swings with it (CPU time per delivery much less);
- how the clients fell on the workers (each worker's connected sockets), and the clients'
  own CPU time per 1,000 deliveries (their processes', summed): on a small machine the
  clients, the workers and Redis share the same cores, so the latency's tail holds their
  share too;
- the machine's floor: the CPU one event's deliveries cost (the workers', Redis's and the
  clients'), divided by the cores. Every delivery of an event cannot be made sooner than
  that after its publish, whatever the fan-out does; a p99 target below it is out of reach
  on this machine unless the CPU per delivery drops.

A warm-up event is published first until every client has one (so every worker's
subscription is live), and is not measured. ``--repeat N`` runs N rounds, the kinds
interleaved, and reports each figure's median. Everything runs on 127.0.0.1 and stops by
itself; a kind whose events do not all arrive within ``events / rate + 60`` seconds is
reported with what did arrive.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from benchmarks import bench_load
from sse_core import Event, ServerConfig
from sse_core.state import ReplayConfig

KINDS = ("sse_core", "sse_core-asgi", "sse-starlette-pubsub")
#: The uvicorn application each kind under uvicorn serves (``benchmarks.bench_scaleout:NAME``).
_UVICORN_APPS = {"sse_core-asgi": "sse_core_app", "sse-starlette-pubsub": "starlette_app"}
#: The retention of every worker's feed, and of the publisher's appends.
RETENTION = ReplayConfig(max_events=10_000, max_bytes=None)
#: Seconds a worker or Redis may take to start; only a failure waits this long.
START_TIMEOUT = 60.0
_ROOT = Path(__file__).resolve().parent.parent
_URL_ENV, _KEY_ENV = "SCALEOUT_REDIS_URL", "SCALEOUT_KEY"


# --- the workers (each kind's application, built in the worker process) -------------------


def _redis_client() -> Any:
    import redis.asyncio

    return redis.asyncio.Redis.from_url(os.environ[_URL_ENV], socket_timeout=5.0)


def _server_parts() -> dict[str, Any]:
    """What both sse_core kinds are made of: a feed, a config, options (no client limit)."""
    from sse_core.adapters import ServerOptions
    from sse_core.adapters.redis import RedisFeed

    return {
        "feed": RedisFeed(_redis_client(), os.environ[_KEY_ENV], RETENTION),
        "config": ServerConfig(heartbeat_interval=15.0, is_compression_enabled=False),
        "options": ServerOptions(max_subscribers=None),
    }


class _PubSubFanout:
    """The usual recipe's worker side: one Redis pub/sub subscription per worker (made by
    the first request), whose messages are copied into every open request's queue."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[dict[str, str]]] = set()
        self._ready: asyncio.Event | None = None
        self._listener: asyncio.Task[None] | None = None

    async def subscribed(self) -> None:
        """Subscribe, once per worker; wait until Redis has confirmed it."""
        if self._ready is None:
            self._ready = asyncio.Event()
            self._listener = asyncio.get_running_loop().create_task(self._listen(self._ready))
        await self._ready.wait()

    async def _listen(self, ready: asyncio.Event) -> None:
        pubsub = _redis_client().pubsub()
        await pubsub.subscribe(os.environ[_KEY_ENV])
        ready.set()
        counter = 0
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            counter += 1
            # The same wire text as sse_core's (an id and the data), built once per event.
            item = {"id": str(counter), "data": message["data"].decode()}
            for queue in list(self._queues):
                if not queue.full():
                    queue.put_nowait(item)

    async def items(self) -> AsyncIterator[dict[str, str]]:
        """One request's events: what arrives from now on (pub/sub keeps nothing)."""
        queue: asyncio.Queue[dict[str, str]] = asyncio.Queue(maxsize=10_000)
        self._queues.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.discard(queue)


def _make_starlette_app() -> Any:
    """The usual recipe: sse-starlette, each request's generator fed by the worker's
    pub/sub subscription."""
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    fanout = _PubSubFanout()

    async def events(request: Request) -> EventSourceResponse:
        await fanout.subscribed()
        return EventSourceResponse(fanout.items(), ping=15)

    return Starlette(routes=[Route("/events", events)])


def __getattr__(name: str) -> Any:
    """``sse_core_app`` and ``starlette_app``, made on first use in the worker process."""
    if name == "sse_core_app":
        from sse_core.adapters.asgi import EventStream

        made = EventStream(**_server_parts())
    elif name == "starlette_app":
        made = _make_starlette_app()
    else:
        raise AttributeError(name)
    globals()[name] = made
    return made


async def _serve_asyncio() -> None:
    """One asyncio worker: print its port, serve until stdin closes."""
    from sse_core.adapters.asyncio import EventStreamServer

    server = EventStreamServer(**_server_parts())
    await server.start("127.0.0.1", 0)
    print(json.dumps({"port": server.address[1]}), flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await server.aclose(grace=0.0)


async def _publish(kind: str) -> None:
    """The publisher: ``bench_load``'s command loop, each event appended through Redis."""
    from sse_core.adapters.redis import RedisLog

    client, key = _redis_client(), os.environ[_KEY_ENV]
    log = RedisLog(client, key, RETENTION)
    pending: set[asyncio.Task[Any]] = set()
    loop = asyncio.get_running_loop()

    def publish(data: str) -> None:  # the publish time is in ``data`` already
        if kind == "sse-starlette-pubsub":
            task = loop.create_task(client.publish(key, data))
        else:
            task = loop.create_task(log.append(Event(data=data), time.monotonic()))
        pending.add(task)
        task.add_done_callback(pending.discard)

    await bench_load._command_loop(publish, lambda: 0, 0)
    await client.aclose()


# --- process figures from /proc ---------------------------------------------------------


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """A process's user and system CPU time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _served(pids: list[int], ports: list[int]) -> list[int]:
    """How many established connections to one of ``ports`` each process holds (its
    clients; not its own connections to Redis)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if fields[3] == "01" and local_port in ports:  # 01: ESTABLISHED
            inodes.add(f"socket:[{fields[9]}]")
    counts = []
    for pid in pids:
        count = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                count += os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
        counts.append(count)
    return counts


def _children(parent: int) -> list[int]:
    """The processes ``multiprocessing`` spawned for ``parent`` (uvicorn's workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in command:
                found.append(int(entry))
    return sorted(found)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(OSError):
        if process.stdin is not None:
            process.stdin.close()
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_redis() -> Iterator[str]:
    """A redis-server of the benchmark's own (loopback, free port, no persistence, a
    temporary directory); yields its URL and stops it by PID."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is missing (apt-get install redis-server), or pass"
                         " --redis-url")
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as directory:
        port = _free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            client = redis.Redis.from_url(url, socket_timeout=1.0)
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                with contextlib.suppress(redis.exceptions.RedisError):
                    if client.ping():
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
            client.close()
            yield url
        finally:
            _stop(process)


def _redis_cpu(url: str) -> float:
    """Redis's own CPU time so far (user + system), from ``INFO cpu``."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5.0)
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# --- a run --------------------------------------------------------------------------------


class _Workers:
    """One kind's worker processes: their pids and the ports the clients use."""

    def __init__(self, kind: str, count: int, env: dict[str, str], directory: Path) -> None:
        self.processes: list[subprocess.Popen[str]] = []
        if kind == "sse_core":
            for _ in range(count):
                process = subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.bench_scaleout", "--serve"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=_ROOT,
                )
                self.processes.append(process)
            assert all(p.stdout is not None for p in self.processes)
            self.ports = [int(json.loads(p.stdout.readline())["port"])  # type: ignore[union-attr]
                          for p in self.processes]
            self.pids = [p.pid for p in self.processes]
            return
        port = _free_port()
        app = f"benchmarks.bench_scaleout:{_UVICORN_APPS[kind]}"
        log = directory / f"uvicorn-{kind}.log"
        with open(log, "w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", app,
                 "--workers", str(count), "--host", "127.0.0.1", "--port", str(port),
                 "--backlog", "4096", "--log-level", "info", "--no-access-log",
                 "--timeout-graceful-shutdown", "1",
                 # SCALEOUT_UVICORN_HTTP=h11 or httptools picks uvicorn's HTTP implementation
                 # (else uvicorn's choice: httptools when installed).
                 *(["--http", http] if (http := os.environ.get("SCALEOUT_UVICORN_HTTP")) else [])],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, text=True,
                env=env, cwd=_ROOT,
            )
        self.processes.append(process)
        deadline = time.monotonic() + START_TIMEOUT
        # Each worker logs this once it has loaded the application, before it accepts.
        while log.read_text().count("Started server process") < count:
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn did not start its workers:\n{log.read_text()}")
            time.sleep(0.1)
        time.sleep(0.5)
        self.ports = [port]
        self.pids = _children(process.pid)
        assert len(self.pids) == count, (self.pids, log.read_text())

    def cpu(self) -> tuple[float, float]:
        times = [_cpu_seconds(pid) for pid in self.pids]
        return sum(t[0] for t in times), sum(t[1] for t in times)

    def rss(self) -> int:
        return sum(_rss(pid) for pid in self.pids)

    def clients(self) -> list[int]:
        return _served(self.pids, self.ports)

    def stop(self) -> None:
        for process in self.processes:
            _stop(process)


class _Publisher(bench_load._Server):
    """The publisher's process, driven by ``bench_load``'s commands."""

    def __init__(self, kind: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_scaleout", "--publish", kind],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=_ROOT,
        )
        self.read()  # its (meaningless) port line

    def publish(self, count: int, rate: float, size: int) -> None:
        self.ask(f"publish {count} {rate} {size}")


async def _until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def run_one(
    kind: str, clients: int, events: int, rate: float, size: int, *,
    redis_url: str, workers: int = 4,
    client: bench_load.ClientChoice = bench_load.LEAN,
) -> dict[str, Any]:
    """Serve ``clients`` with ``workers`` processes of ``kind`` sharing the Redis at
    ``redis_url``, publish through it, and measure with the clients ``client``; see the
    module's documentation."""
    key = f"bench-scaleout:{kind}:{uuid.uuid4().hex[:8]}"
    env = {**os.environ, _URL_ENV: redis_url, _KEY_ENV: key, "PYTHONPATH": str(_ROOT)}
    expected = clients * events
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as directory:
        pool = _Workers(kind, workers, env, Path(directory))
        publisher = _Publisher(kind, env)
        streams = client.make()
        try:
            await asyncio.sleep(0.5)
            idle_rss = pool.rss()
            started = time.monotonic()
            shares = [clients // len(pool.ports) + (i < clients % len(pool.ports))
                      for i in range(len(pool.ports))]
            for port, share in zip(pool.ports, shares, strict=True):
                await streams.connect(port, share, "1.1")
            await _until(lambda: streams.streaming() >= clients, 60 + clients / 50)
            connect_time = time.monotonic() - started
            await asyncio.sleep(1.0)
            connected_rss, per_worker = pool.rss(), pool.clients()
            # Warm-up: one event at a time until every client has one (every subscription live).
            deadline = time.monotonic() + 60
            while not streams.least_received() and time.monotonic() < deadline:
                publisher.publish(1, 1.0, size)
                await asyncio.get_running_loop().run_in_executor(None, publisher.read)
                await _until(lambda: streams.least_received() > 0, 0.5)
            warmed = streams.warmed()
            await asyncio.sleep(1.5)  # the warm-up's last deliveries land before the window
            cpu_before, redis_before = pool.cpu(), _redis_cpu(redis_url)
            await streams.start_window(events)
            publisher.publish(events, rate, size)
            await streams.wait(events / rate + 60)
            cpu_after, redis_after = pool.cpu(), _redis_cpu(redis_url)
            load = os.getloadavg()[0]
            await asyncio.get_running_loop().run_in_executor(None, publisher.read)
            window = streams.result()
        finally:
            streams.close()
            publisher.stop()
            pool.stop()
    per_1000 = 1000 * 1000 / expected  # seconds of CPU -> ms per 1,000 deliveries
    user = (cpu_after[0] - cpu_before[0]) * per_1000
    system = (cpu_after[1] - cpu_before[1]) * per_1000
    result = {
        "clients": clients,
        "workers": len(pool.pids),
        "clients_per_worker": per_worker,
        "warmed": warmed,
        "connect_s": connect_time,
        "mem_per_conn_kib": (connected_rss - idle_rss) / clients / 1024,
        "cpu_ms_per_1000": user + system,
        "user_ms_per_1000": user,
        "sys_ms_per_1000": system,
        "redis_cpu_ms_per_1000": (redis_after - redis_before) * per_1000,
        **bench_load.window_figures(window, expected),
        "load": load,
    }
    result["floor_ms"] = machine_floor_ms(result, os.cpu_count() or 1)
    return result


def machine_floor_ms(result: dict[str, Any], cores: int) -> float:
    """The least time, in ms, in which this machine can have made every delivery of one
    event: the CPU all of them cost (the workers', Redis's and the clients', per event)
    spread over every core. The p99 of the deliveries cannot be much below it (99 % of an
    event's deliveries take about 99 % of that CPU), whatever the server does, unless the
    CPU per delivery drops."""
    per_event: float = (
        result["cpu_ms_per_1000"] + result["redis_cpu_ms_per_1000"]
        + result["clients_cpu_ms_per_1000"]
    ) * result["clients"] / 1000
    return per_event / cores


# --- the report ---------------------------------------------------------------------------

#: The side-by-side table's rows: (label, key, format).
ROWS = (
    ("delivered / expected", "delivered", "{:.0f}"),
    ("clients per worker", "clients_per_worker", "{}"),
    ("CPU ms / 1,000 deliveries (workers)", "cpu_ms_per_1000", "{:.2f}"),
    ("  of it user", "user_ms_per_1000", "{:.2f}"),
    ("  of it system", "sys_ms_per_1000", "{:.2f}"),
    ("Redis CPU ms / 1,000 deliveries", "redis_cpu_ms_per_1000", "{:.3f}"),
    ("clients' CPU ms / 1,000 deliveries", "clients_cpu_ms_per_1000", "{:.2f}"),
    ("  deliveries per read (lean clients)", "deliveries_per_read", "{:.2f}"),
    ("clients with every event once, in order", "complete_clients", "{:.0f}"),
    ("  deliveries out of order or repeated", "errors", "{:.0f}"),
    ("memory / idle connection, KiB", "mem_per_conn_kib", "{:.1f}"),
    ("p50 publish->receipt, ms", "p50_ms", "{:.1f}"),
    ("p99 publish->receipt, ms", "p99_ms", "{:.1f}"),
    ("machine's floor for an event's deliveries, ms", "floor_ms", "{:.1f}"),
    ("connect time, s", "connect_s", "{:.1f}"),
    ("machine's load (1 min) after", "load", "{:.1f}"),
)


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """The figures side by side, a column per kind."""
    width = max(len(label) for label, _, _ in ROWS)
    columns = {kind: [] for kind in results}  # type: dict[str, list[str]]
    for kind, result in results.items():
        for _, key, template in ROWS:
            text = template.format(result[key])
            if key == "delivered":
                text += f" / {result['expected']:.0f}"
            columns[kind].append(text)
    widths = {kind: max(len(kind), *(len(c) for c in cells)) for kind, cells in columns.items()}
    lines = [" " * width + "".join(f"  {kind:>{widths[kind]}}" for kind in results)]
    for row, (label, _, _) in enumerate(ROWS):
        lines.append(f"{label:<{width}}" + "".join(
            f"  {columns[kind][row]:>{widths[kind]}}" for kind in results
        ))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--rate", type=float, default=5.0, help="events per second")
    parser.add_argument("--size", type=int, default=100, help="bytes of data per event")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"comma-separated, of {', '.join(KINDS)}")
    parser.add_argument("--redis-url", help="use this Redis instead of starting one")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds (kinds interleaved); the medians are reported")
    parser.add_argument("--json", metavar="PATH", help="write the results to PATH as JSON")
    # Two client processes by default: with four busy workers the kernel's fair share gives
    # one process a fifth of the cores, less than the clients need to keep up (they spend
    # about half what the workers do), so a single one lags and the latency is its own.
    bench_load.add_client_options(parser, processes=2)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--publish", choices=KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    bench_load._raise_fd_limit()
    if args.serve:
        asyncio.run(_serve_asyncio())
        return 0
    if args.publish:
        asyncio.run(_publish(args.publish))
        return 0
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown kinds {unknown}; choose from {', '.join(KINDS)}")
    print(
        f"{args.clients} clients over {args.workers} workers, one Redis, {args.events} events"
        f" of {args.size} B at {args.rate:g}/s, loopback, {os.cpu_count()} cores,"
        f" load {os.getloadavg()[0]:.1f}\n"
        f"{bench_load.client_choice(args).describe()}\n", flush=True,
    )
    rounds: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    with contextlib.ExitStack() as stack:
        url = args.redis_url or stack.enter_context(running_redis())
        for round_number in range(args.repeat):
            for kind in kinds:  # interleaved: a change in the machine's load hits all alike
                result = asyncio.run(run_one(
                    kind, args.clients, args.events, args.rate, args.size,
                    redis_url=url, workers=args.workers,
                    client=bench_load.client_choice(args),
                ))
                rounds[kind].append(result)
                print(f"round {round_number + 1}: {kind}: {json.dumps(result)}", flush=True)
    results = {kind: bench_load._median(runs) for kind, runs in rounds.items()}
    print(f"\nmedians of {args.repeat} rounds:" if args.repeat > 1 else "\nfigures:")
    print(format_table(results))
    print(
        f"\nThe machine's floor: (workers' + Redis's + clients' CPU per event) / {os.cpu_count()}"
        " cores, the least time in which every delivery of one event can be made here: a p99"
        " much below it is out of reach on this machine without less CPU per delivery."
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
