"""A busy stream behind a buffering nginx: does the client notice? (a measurement, not a test)

    python -m benchmarks.longpoll_busy [--rate 2000] [--seconds 8] [--first-byte-timeout 3]
                                       [--stall-timeout 10]

sse_core's asyncio server behind the buffering nginx of ``tests/adapters/nginx_support.py``
(its gzip stage holds what passes); sse_core's blocking client with both URLs through nginx,
``switch_after=1``. The server publishes events of about 130 bytes (a publish time and 60
random bytes in hex, which gzip cannot shrink much) at ``--rate`` per second for
``--seconds``, then an end marker. Printed: whether the client switched to polls and when,
when its first event arrived, how late the events were (publish to delivery, median and
maximum), and the pauses of more than 0.3 s between deliveries (the buffer's bursts).

A fast stream fills the buffer before ``first_byte_timeout``: bytes arrive, in bursts, and the
client stays on the late stream; a slow one does not, and the client switches. When the fast
stream goes quiet, its last buffer's worth (the end marker with it) stays in the proxy until
the client's ``stall_timeout`` gives the connection up; the next stream shows no byte, and the
client switches and polls the rest.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from sse_core import ClientConfig, Deliver, Event, ReportTransport, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters.sync import EventSource
from sse_core.state import BackoffConfig, ReplayConfig, ReplayLog
from tests.adapters.nginx_support import BUFFERING, running_nginx
from tests.adapters.test_server_edges import Served

END = "end"


def measure(rate: float, seconds: float, first_byte_timeout: float, stall_timeout: float) -> str:
    """One run; its report."""
    served = Served(
        "asyncio", replay_log=ReplayLog(ReplayConfig(max_events=1_000_000, max_bytes=None)),
        options=ServerOptions(long_poll_path="/poll"),
        config=ServerConfig(heartbeat_interval=None),
    )

    def publish() -> None:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            for _ in range(10):
                served.publish(Event(data=f"{time.monotonic():.4f} {os.urandom(60).hex()}"))
            time.sleep(10 / rate)
        served.publish(Event(data=END))

    lines: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as directory:
            prefix = Path(directory) / "nginx"
            with running_nginx(prefix, served.address, BUFFERING) as (host, port):
                config = ClientConfig(
                    url=f"http://{host}:{port}/events", long_poll_url=f"http://{host}:{port}/poll",
                    first_byte_timeout=first_byte_timeout, switch_after=1,
                    stall_timeout=stall_timeout,
                    long_poll_timeout=5.0, retry_streaming_after=3600.0,
                    backoff=BackoffConfig(base_delay=0.05, min_base_delay=0.01, max_delay=0.2),
                )
                publisher = threading.Thread(target=publish, name="publisher")
                delays: list[float] = []
                arrivals: list[float] = []
                started = time.monotonic()
                with EventSource(config) as source:
                    publisher.start()
                    for report in source.reports():
                        now = time.monotonic()
                        if isinstance(report, ReportTransport):
                            lines.append(f"  {now - started:.2f} s: switched to"
                                         f" {report.transport.value}")
                        elif isinstance(report, Deliver):
                            if report.event.data == END:
                                break
                            arrivals.append(now - started)
                            delays.append(now - float(report.event.data.split(" ", 1)[0]))
                    transport = source.session.transport.value
                publisher.join()
    finally:
        served.close()
    pauses = [later - earlier for earlier, later in itertools.pairwise(arrivals)
              if later - earlier > 0.3]
    lines.insert(0, f"{rate:g} events/s for {seconds:g} s, first_byte_timeout"
                    f" {first_byte_timeout:g} s, stall_timeout {stall_timeout:g} s:"
                    f" {len(delays)} delivered, ended on {transport}")
    if delays:
        lines.append(f"  first event after {arrivals[0]:.2f} s; late by a median"
                     f" {statistics.median(delays):.2f} s, at most {max(delays):.2f} s")
    lines.append(f"  {len(pauses)} pauses over 0.3 s between deliveries:"
                 f" {', '.join(f'{pause:.2f}' for pause in pauses[:8])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure once with the command line's figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=2000.0, help="events published per s")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--first-byte-timeout", type=float, default=3.0)
    parser.add_argument("--stall-timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    print(measure(args.rate, args.seconds, args.first_byte_timeout, args.stall_timeout))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
