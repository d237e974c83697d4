"""What an idempotent append costs: Redis CPU per append, keyed against unkeyed.

Starts a redis-server of its own (a free loopback port, a temporary directory, no
persistence) and appends ``--count`` events through a blocking ``SyncRedisLog`` three ways:
without a key, each under a new key (uuid4: a first publish), and each under a key answered
before (a retry: nothing stored). Reports, per append, the script's CPU time in Redis
(``INFO commandstats``: ``usec_per_call`` of ``EVALSHA``), the publisher's CPU time
(``time.process_time``) and the round trip, and the memory Redis holds per remembered key.

    .venv/bin/python -m benchmarks.bench_idempotent --count 20000
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


def _started(directory: str, port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is missing (.ci/peers.sh installs it)")
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


def _run(client: Any, log: SyncRedisLog, keys: list[str | None]) -> dict[str, float]:
    """Append one event per key; the costs per append."""
    client.config_resetstat()
    event = Event(data="x" * 100)
    cpu, wall = time.process_time(), time.perf_counter()
    for key in keys:
        log.append(event, time.monotonic(), idempotency_key=key)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    stats = client.info("commandstats")["cmdstat_evalsha"]
    return {
        "redis_us": float(stats["usec_per_call"]),
        "client_cpu_us": cpu / len(keys) * 1e6,
        "round_trip_us": wall / len(keys) * 1e6,
    }


def main() -> None:
    """Run the three ways and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="appends per way")
    count = parser.parse_args().count
    port = _free_port()
    with tempfile.TemporaryDirectory() as directory:
        process = _started(directory, port)
        try:
            client = redis.Redis(port=port, socket_timeout=5.0)
            # Nothing trimmed: the memory a keyed round adds beyond an unkeyed one is its keys.
            log = SyncRedisLog(client, "bench", ReplayConfig(max_events=3 * count))
            log.append(Event(data="warm"), time.monotonic())  # the script is loaded
            fresh: list[str | None] = [str(uuid.uuid4()) for _ in range(count)]
            memory = [int(client.info("memory")["used_memory"])]
            rows = {"unkeyed": _run(client, log, [None] * count)}
            memory.append(int(client.info("memory")["used_memory"]))
            rows["keyed, new key"] = _run(client, log, fresh)
            memory.append(int(client.info("memory")["used_memory"]))
            rows["keyed, retry"] = _run(client, log, fresh)
            per_key = ((memory[2] - memory[1]) - (memory[1] - memory[0])) / count
            client.close()
        finally:
            process.terminate()
            process.wait(10.0)
    print(f"{count} appends per way, 100-byte events, key = uuid4 (36 characters)")
    print(f"{'way':<16}{'Redis CPU µs':>14}{'client CPU µs':>15}{'round trip µs':>15}")
    for name, row in rows.items():
        print(f"{name:<16}{row['redis_us']:>14.1f}{row['client_cpu_us']:>15.1f}"
              f"{row['round_trip_us']:>15.1f}")
    print(f"Redis memory per remembered key: about {per_key:.0f} bytes")


if __name__ == "__main__":
    main()
