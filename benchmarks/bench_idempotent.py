"""What an idempotent append costs: Redis CPU per append, keyed against unkeyed.

Starts a redis-server (or ``--server valkey-server``) of its own (a free loopback port, a
temporary directory, no persistence) and appends ``--count`` events through a blocking
``SyncRedisLog`` three ways (in ``--rounds`` blocks, the ways in turn): without a key, each
under a new key (uuid4: a first publish), and each under a key answered before (a retry:
nothing stored). Reports, per append, the script's CPU time in Redis
(``INFO commandstats``: the ``usec`` of ``EVALSHA``, scripts included), the publisher's CPU time
(``time.process_time``) and the round trip, and the memory Redis holds per remembered key.

    .venv/bin/python -m benchmarks.bench_idempotent --count 30000 --rounds 6
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from typing import Any

import redis

from sse_core import Event
from sse_core.adapters.redis import SyncRedisLog
from sse_core.state import ReplayConfig


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _started(directory: str, port: int, program: str) -> subprocess.Popen[bytes]:
    binary = shutil.which(program)
    if binary is None:
        raise SystemExit(f"{program} is missing (.ci/peers.sh installs it)")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    client = redis.Redis(port=port, socket_timeout=1.0)
    deadline = time.monotonic() + 30.0
    while True:
        try:
            if client.ping():
                client.close()
                return process
        except redis.exceptions.RedisError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)


def _run(client: Any, log: SyncRedisLog, keys: list[str | None]) -> tuple[float, float, float]:
    """Append one event per key; Redis's CPU, the client's CPU, the wall time (seconds)."""
    client.config_resetstat()
    event = Event(data="x" * 100)
    cpu, wall = time.process_time(), time.perf_counter()
    for key in keys:
        log.append(event, time.monotonic(), idempotency_key=key)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    stats = client.info("commandstats")["cmdstat_evalsha"]
    return float(stats["usec"]) / 1e6, cpu, wall


def main() -> None:
    """Run the three ways and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30_000, help="appends per way")
    parser.add_argument("--rounds", type=int, default=6, help="blocks per way, in turn")
    parser.add_argument("--server", default="redis-server", help="or valkey-server")
    arguments = parser.parse_args()
    count, rounds = arguments.count, arguments.rounds
    port = _free_port()
    with tempfile.TemporaryDirectory() as directory:
        process = _started(directory, port, arguments.server)
        try:
            client = redis.Redis(port=port, socket_timeout=5.0)
            # Nothing trimmed: the memory a keyed block adds beyond an unkeyed one is its keys.
            log = SyncRedisLog(client, "bench", ReplayConfig(max_events=3 * count))
            log.append(Event(data="warm"), time.monotonic())  # the script is loaded
            ways = ("unkeyed", "keyed, new key", "keyed, retry")
            totals = {way: [0.0, 0.0, 0.0] for way in ways}
            grown = {way: 0 for way in ways[:2]}
            block = max(1, count // rounds)
            for _ in range(rounds):  # the ways in turn, so that load drifts hit each alike
                fresh: list[str | None] = [str(uuid.uuid4()) for _ in range(block)]
                blocks: tuple[list[str | None], ...] = ([None] * block, fresh, fresh)
                for way, keys in zip(ways, blocks, strict=True):
                    before = int(client.info("memory")["used_memory"])
                    costs = _run(client, log, keys)
                    if way in grown:
                        grown[way] += int(client.info("memory")["used_memory"]) - before
                    totals[way] = [t + c for t, c in zip(totals[way], costs, strict=True)]
            appends = block * rounds
            per_key = (grown["keyed, new key"] - grown["unkeyed"]) / appends
            client.close()
        finally:
            process.terminate()
            process.wait(10.0)
    print(f"{arguments.server}: {appends} appends per way in {rounds} rounds,"
          " 100-byte events, key = uuid4")
    print(f"{'µs per append':<16}{'Redis CPU':>12}{'client CPU':>12}{'round trip':>12}")
    for way in ways:
        redis_cpu, client_cpu, wall = (t / appends * 1e6 for t in totals[way])
        print(f"{way:<16}{redis_cpu:>12.1f}{client_cpu:>12.1f}{wall:>12.1f}")
    print(f"Redis memory per remembered key: about {per_key:.0f} bytes")

if __name__ == "__main__":
    main()
