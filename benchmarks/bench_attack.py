"""Attack benchmark: what non-reading clients cost each server, in memory and publish delay.

    python -m benchmarks.bench_attack            # the full run, a few minutes
    python -m benchmarks.bench_attack --quick    # 100 / 200 connections, seconds

Servers (each in its own process, see ``benchmarks/_attack_servers.py``): sse_core's
asyncio, trio and sync ``EventStreamServer`` and its ASGI ``EventStream`` under uvicorn, all
with their defaults, and sse-starlette under uvicorn as the peer baseline where the attack
applies. Each fills its replay log to the defaults (1,000 events of about 1 KiB) and then
publishes one event every 0.1 s. The attacks (a fresh server process for each):

0. the control: ``--connections`` non-readers without ``Last-Event-ID`` (what the
   connections cost without the attack);
1. ``--connections`` clients send ``Last-Event-ID: bogus-1`` and never read (their receive
   buffers made small);
2. the same after a deploy: a server of the old epoch is stopped, a new one (new epoch,
   log filled again) started, and the clients come back with ids of the old epoch;
3. the clients resume from the oldest id the log still has (a full replay, legitimately);
4. ``--readers`` connected non-readers without ``Last-Event-ID`` while publishing goes on:
   publishes per second over ``--hold`` seconds once all are connected, without and with
   ``Accept-Encoding: gzip``.

For each: the server's RSS before and after, its peak (VmHWM), the bytes the kernel holds in
the server's send queues (``/proc/net/tcp``), "held" (RSS growth plus those queues), how
late the publisher ran against its schedule and how long one publish was held up at most
(max and p99 of each; see ``_Schedule`` in ``_attack_servers.py``), from the first
connection to the end. sse-starlette keeps no replay log and ignores ``Last-Event-ID``:
attack 1 against it is the cost of non-readers alone; attacks 2 and 3 and gzip do not apply.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

from ._attack_servers import (
    SERVERS,
    SSE_CORE_SERVERS,
    AttackResult,
    ServerProcess,
    attacked,
    raise_fd_limit,
    request_bytes,
    run_attack,
)

#: Attack key -> title.
ATTACKS = {
    "0": "non-readers without Last-Event-ID (the control)",
    "1": "non-readers with Last-Event-ID: bogus-1",
    "2": "non-readers with ids of the old epoch, after a deploy",
    "3": "non-readers resuming from the oldest id the log has",
    "4": "connected non-readers (no Last-Event-ID), publishing at 10/s",
    "4gz": "connected non-readers with Accept-Encoding: gzip, publishing at 10/s",
}

#: Attacks that do not apply to sse-starlette (no replay log, no gzip).
_NOT_FOR_PEER = {"2", "3", "4gz"}


class Settings:
    """Sizes and durations of one run."""

    def __init__(self, connections: int, readers: int, settle: float, hold: float) -> None:
        self.connections = connections
        self.readers = readers
        self.settle = settle
        self.hold = hold


def attack_control(name: str, settings: Settings) -> AttackResult:
    """Attack 0, the control: as many non-readers, without ``Last-Event-ID``."""
    return _same_request(name, settings, request_bytes())


def attack_bogus_id(name: str, settings: Settings) -> AttackResult:
    """Attack 1: non-readers with a made-up ``Last-Event-ID``."""
    return _same_request(name, settings, request_bytes(last_event_id="bogus-1"))


def _same_request(name: str, settings: Settings, request: bytes) -> AttackResult:
    with ServerProcess(name) as server:
        result, sockets = run_attack(
            server, settings.connections, lambda i: request, settle=settings.settle
        )
        with attacked(sockets):
            return result


def old_epoch_ids(name: str) -> list[str]:
    """The ids a server process of ``name`` had in its log when it stopped (a deploy)."""
    with ServerProcess(name) as old:
        last = old.stats()["last_id"]
    epoch, _, n = last.rpartition("-")
    return [f"{epoch}-{int(n) - k}" for k in range(1000)]


def attack_after_deploy(name: str, settings: Settings) -> AttackResult:
    """Attack 2: after a restart with a new epoch, clients come back with old ids."""
    ids = old_epoch_ids(name)
    with ServerProcess(name) as server:
        assert server.epoch and not ids[0].startswith(server.epoch + "-")
        result, sockets = run_attack(
            server, settings.connections,
            lambda i: request_bytes(last_event_id=ids[i % len(ids)]),
            settle=settings.settle,
        )
        with attacked(sockets):
            return result


def attack_oldest_id(name: str, settings: Settings) -> AttackResult:
    """Attack 3: every client resumes from the oldest id the log still has (asked for again
    before each batch of connections, since the log moves on at 10 events per second)."""
    with ServerProcess(name) as server:
        oldest = [""]

        def request_for(i: int) -> bytes:
            if i % 100 == 0:
                oldest[0] = server.stats()["oldest_id"]
            return request_bytes(last_event_id=oldest[0])

        result, sockets = run_attack(
            server, settings.connections, request_for, settle=settings.settle
        )
        with attacked(sockets):
            return result


def attack_connected(name: str, settings: Settings, *, is_gzip: bool) -> AttackResult:
    """Attack 4: many connected non-readers while publishing; the window is the ``hold``."""
    request = request_bytes(is_gzip=is_gzip)
    with ServerProcess(name) as server:
        result, sockets = run_attack(
            server, settings.readers, lambda i: request, settle=settings.settle,
            hold=settings.hold,
        )
        with attacked(sockets):
            return result


def run(key: str, name: str, settings: Settings) -> AttackResult:
    """Attack ``key`` against server ``name``."""
    runners: dict[str, Callable[[str, Settings], AttackResult]] = {
        "0": attack_control,
        "1": attack_bogus_id,
        "2": attack_after_deploy,
        "3": attack_oldest_id,
        "4": lambda n, s: attack_connected(n, s, is_gzip=False),
        "4gz": lambda n, s: attack_connected(n, s, is_gzip=True),
    }
    return runners[key](name, settings)


_HEADER = (
    f"{'server':14s} {'conn':>5s} {'RSS before':>10s} {'after':>7s} {'peak':>7s}"
    f" {'send-Q':>7s} {'held':>7s} {'late max':>9s} {'p99':>6s} {'stall max':>10s} {'p99':>6s}"
    f" {'ev/s':>5s}"
)


def format_row(row: dict[str, Any]) -> str:
    """One line of a table (MiB, milliseconds)."""
    return (
        f"{row['server']:14s} {row['connected']:5d} {row['rss_before_mib']:10.0f}"
        f" {row['rss_after_mib']:7.0f} {row['peak_mib']:7.0f} {row['send_queue_mib']:7.0f}"
        f" {row['held_mib']:7.0f} {row['late_max_ms']:9.0f} {row['late_p99_ms']:6.0f}"
        f" {row['stall_max_ms']:10.0f} {row['stall_p99_ms']:6.0f} {row['events_per_s']:5.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="100 / 200 connections and short waits (a smoke run)")
    parser.add_argument("--connections", type=int, help="non-readers in attacks 1-3 (1000)")
    parser.add_argument("--readers", type=int, help="non-readers in attack 4 (2000)")
    parser.add_argument("--hold", type=float, help="seconds of attack 4's window (5)")
    parser.add_argument("--settle", type=float,
                        help="seconds for the writes to land once all are connected (2)")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"comma-separated, of {', '.join(SERVERS)}")
    parser.add_argument("--attacks", default=",".join(ATTACKS),
                        help=f"comma-separated, of {', '.join(ATTACKS)}")
    args = parser.parse_args(argv)
    settings = Settings(100, 200, 0.5, 1.0) if args.quick else Settings(1000, 2000, 2.0, 5.0)
    if args.connections is not None:
        settings.connections = args.connections
    if args.readers is not None:
        settings.readers = args.readers
    if args.hold is not None:
        settings.hold = args.hold
    if args.settle is not None:
        settings.settle = args.settle
    servers = [name for name in args.servers.split(",") if name]
    attacks = [key for key in args.attacks.split(",") if key]
    unknown = [*(set(servers) - set(SERVERS)), *(set(attacks) - set(ATTACKS))]
    if unknown:
        parser.error(f"unknown server or attack: {', '.join(sorted(unknown))}")
    raise_fd_limit()

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"attack benchmark: {os.cpu_count()} cores (load {load}), Python"
        f" {platform.python_version()}; replay log 1,000 events of ~1 KiB, one publish every"
        f" 0.1 s\nMiB: RSS before/after the attack, peak (VmHWM), send-Q (the kernel's send"
        f" queues of the server's connections), held (RSS growth + send-Q);\nms: how late"
        f" publishes ran against the schedule, and how long one publish was held up (max, p99);"
        f" ev/s: publishes per second in the window",
        flush=True,
    )
    started = time.monotonic()
    for key in attacks:
        count = settings.readers if key.startswith("4") else settings.connections
        window = f", window {settings.hold:g} s once connected" if key.startswith("4") else ""
        print(f"\nattack {key}: {count:,} {ATTACKS[key]}{window}\n{_HEADER}", flush=True)
        for name in servers:
            if name not in SSE_CORE_SERVERS and key in _NOT_FOR_PEER:
                print(f"{name:14s}   n/a (no replay log / no gzip)", flush=True)
                continue
            print(format_row(run(key, name, settings).row()), flush=True)
    print(f"\n{time.monotonic() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
