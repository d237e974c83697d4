"""Long-polling vs streaming behind a real nginx (a benchmark, not a test).

    python -m benchmarks.longpoll_nginx [--events 3000] [--rate 1000] [--batch 20]

sse_core's asyncio server behind nginx (the configurations of
``tests/adapters/nginx_support.py``); sse_core's blocking client with both URLs through
nginx, starting on the stream. An application thread publishes ``--events`` events at about
``--rate`` per second, ``--batch`` at a time. Printed per configuration:

- ``buffering``: nginx holds the stream's body; the client detects it and switches. The time
  from the client's start to the first event delivered by long-poll (the detection costs
  ``switch_after`` times ``first_byte_timeout`` plus backoff); then, once polling, events/s
  delivered and requests/s (nginx's access log) over the rest of the run.
- ``friendly``: nginx streams; events/s delivered and requests/s (one request in all).

Both rates are bounded by the publish rate: raise ``--rate`` to find the transport's ceiling
(on this 2-core machine shared with other jobs, figures move by tens of percent).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from sse_core import ClientConfig, Deliver, Event, ReportTransport, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters.sync import EventSource
from sse_core.state import BackoffConfig, ReplayConfig, ReplayLog
from tests.adapters.nginx_support import BUFFERING, FRIENDLY, requests_logged, running_nginx
from tests.adapters.test_server_edges import Served

DEBUG = False


def run(name: str, location: str, events: int, rate: float, batch: int) -> None:
    """One configuration: publish, deliver, print the figures."""
    # The log must hold what is published while the blocked stream is diagnosed (about
    # 2 s here): at 1,000 events/s the default 1,000 events would not, and the client would
    # rightly get a too_old gap after the switch.
    log = ReplayLog(ReplayConfig(epoch="bench", max_events=max(1000, 2 * events)))
    served = Served(
        "asyncio", replay_log=log, options=ServerOptions(long_poll_path="/poll"),
        config=ServerConfig(heartbeat_interval=None),
    )
    try:
        served.publish(Event(data="before"))
        first = served.call(lambda: served.server.broadcaster.replay_log.position)
        with tempfile.TemporaryDirectory() as directory:
            prefix = Path(directory) / "nginx"
            with running_nginx(prefix, served.address, location) as (host, port):
                config = ClientConfig(
                    url=f"http://{host}:{port}/events",
                    long_poll_url=f"http://{host}:{port}/poll",
                    last_event_id=first, first_byte_timeout=1.0, switch_after=2,
                    long_poll_timeout=5.0, min_poll_interval=0.01,
                    retry_streaming_after=3600.0,
                    backoff=BackoffConfig(base_delay=0.05, min_base_delay=0.01, max_delay=0.2),
                )

                def publish() -> None:
                    for start in range(0, events, batch):
                        for number in range(start, min(start + batch, events)):
                            served.publish(Event(data=f"event {number}"))
                        time.sleep(batch / rate)

                publisher = threading.Thread(target=publish)
                started = time.monotonic()
                switched_at: float | None = None
                first_polled: float | None = None
                requests_then = 0
                delivered = 0
                delivered_then = 0
                with EventSource(config) as source:
                    publisher.start()
                    for report in source.reports():
                        if isinstance(report, ReportTransport):
                            switched_at = time.monotonic()
                        if not isinstance(report, Deliver):
                            print(" ", report) if DEBUG else None
                            continue
                        if report.event.data != f"event {delivered}":
                            raise AssertionError(f"got {report.event.data!r} at {delivered}")
                        delivered += 1
                        if switched_at is not None and first_polled is None:
                            first_polled = time.monotonic()
                            delivered_then = delivered
                            requests_then = len(requests_logged(prefix))
                        if delivered == events:
                            break
                ended = time.monotonic()
                publisher.join()
                requests = len(requests_logged(prefix))
        transport = source.session.transport.value
        print(f"{name}: {events} events, each once and in order; ended on {transport}")
        if first_polled is not None and switched_at is not None:
            window = ended - first_polled
            print(f"  start -> switch: {switched_at - started:.2f} s; start -> first event by"
                  f" long-poll: {first_polled - started:.2f} s")
            print(f"  while polling: {(delivered - delivered_then) / window:.0f} events/s,"
                  f" {(requests - requests_then) / window:.1f} requests/s"
                  f" ({requests - requests_then} polls for {delivered - delivered_then} events)")
        else:
            window = ended - started
            print(f"  while streaming: {delivered / window:.0f} events/s,"
                  f" {requests / window:.2f} requests/s ({requests} requests)")
    finally:
        served.close()


def main() -> None:
    """Run both configurations."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=1000.0, help="events published per s")
    parser.add_argument("--batch", type=int, default=20, help="events per publish burst")
    args = parser.parse_args()
    run("buffering", BUFFERING, args.events, args.rate, args.batch)
    run("friendly", FRIENDLY, args.events, args.rate, args.batch)


if __name__ == "__main__":
    main()
