"""What an operator and a client see of the per-request responses (the ASGI ``StreamResponse``
in Starlette under uvicorn, the aiohttp.web one, the WSGI one under wsgiref), over real
loopback sockets: send-time stamps read by sse_core's own client as latency.

The servers and the job's application are those of test_longpoll_responses.py.
"""

from __future__ import annotations

import pytest

from sse_core import ClientConfig, ServerConfig
from sse_core.adapters.sync import EventSource
from tests.adapters.test_longpoll_responses import (
    STREAM,
    framework,
    serve,
)
from tests.adapters.test_longpoll_servers import FAST_BACKOFF, deliver

__all__ = ["framework"]  # the fixture, used by name

STAMPED = ServerConfig(heartbeat_interval=None, padding=64, is_send_time_stamped=True)


@pytest.mark.parametrize("stamped", [True, False])
def test_a_client_reading_a_stamped_response_measures_latency(
    framework: str, stamped: bool
) -> None:
    """With ``is_send_time_stamped`` each event a response sends carries the wall clock's
    send time, and sse_core's client (``is_latency_measured``) has one latency sample per
    event; without it, none."""
    config = STAMPED if stamped else ServerConfig(heartbeat_interval=None, padding=64)
    served = serve(framework, config=config)
    try:
        for number in range(5):
            served.job.publish(str(number))
        client = ClientConfig(url=served.url(STREAM), backoff=FAST_BACKOFF,
                              is_latency_measured=True)
        with EventSource(client) as source:
            assert deliver(source.reports(), 5) == [str(number) for number in range(5)]
            metrics = source.metrics
        latency = metrics.latency
        assert latency.count + metrics.latency_skewed == (5 if stamped else 0)
        if stamped:
            # Same machine, same clock: well under the 10 s of the last bucket.
            assert latency.maximum < 10.0
    finally:
        served.close()
