"""What an operator and a client see of the per-request responses (the ASGI ``StreamResponse``
in Starlette under uvicorn, the aiohttp.web one, the WSGI one under wsgiref), over real
loopback sockets: send-time stamps read by sse_core's own client as latency; the figures of
each response (``metrics``, ``audit_trail``) and of many (a shared ``ResponseCounters``);
a client that stops reading counted as a send timeout and noted in the trail; a poll's
resumes counted and its trail handed out.

The servers and the job's application are those of test_longpoll_responses.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from sse_core import ClientConfig, Event, ServerConfig
from sse_core.adapters import ResponseCounters, ServerOptions, wsgi
from sse_core.adapters.sync import EventSource
from sse_core.state import (
    AuditKind,
    LongPollState,
    ReplayConfig,
    ReplayLog,
    ServerMetrics,
    ServerState,
)
from tests.adapters.test_longpoll_responses import (
    STREAM,
    UvicornThread,
    aiohttp_thread,
    framework,
    serve,
    uvicorn,
)
from tests.adapters.test_longpoll_servers import FAST_BACKOFF, TIMEOUT, deliver
from tests.test_docs_examples import is_peer_required

__all__ = ["framework"]  # the fixture, used by name

try:
    import aiohttp.web
    import starlette.applications
    import starlette.routing

    from sse_core.adapters import _aiohttp_response
    from sse_core.adapters import aiohttp as sse_aiohttp
    from sse_core.adapters import asgi as sse_asgi
except ModuleNotFoundError:  # the peers extra; the framework fixture says so
    pass

STAMPED = ServerConfig(heartbeat_interval=None, padding=64, is_send_time_stamped=True)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` (the server notices a client's going in its own time)."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


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


def test_a_held_poll_is_not_a_connected_client(framework: str) -> None:
    """While a long poll is held (nothing after its id yet), neither the shared counters nor
    the response count it as a connected client -- a broadcaster counts its polls apart from
    its streams too; a publish then answers it."""
    counters = ResponseCounters()
    served = serve(framework, counters=counters)
    try:
        served.job.publish("0")
        answers: list[tuple[int, dict[str, str], bytes]] = []
        poller = threading.Thread(
            target=lambda: answers.append(served.poll("/feed/poll", [("Last-Event-ID", "0")]))
        )
        poller.start()
        wait_for(lambda: len(counters._serving) == 1, "the poll never arrived")
        (response,) = counters._serving.values()
        assert response.is_long_poll
        assert counters.metrics.connected_clients == response.metrics.connected_clients == 0
        served.job.publish("1")
        poller.join(TIMEOUT)
        status, _, body = answers[0]
        assert status == 200
        assert b'"1"' in body
    finally:
        served.close()


def test_shared_counters_add_up_a_stream_and_a_poll(framework: str) -> None:
    """Two responses add to one ``ResponseCounters``: a stream read by sse_core's client
    (3 events), counted as connected until the server sees the client go, then a long poll
    (1 event, its body's bytes); nothing is counted twice once both ended."""
    counters = ResponseCounters()
    # Heartbeats: a WSGI server sees a client's going only when a write to it fails.
    served = serve(framework, config=ServerConfig(heartbeat_interval=0.2), counters=counters)
    try:
        assert counters.metrics == ServerMetrics()
        for number in range(3):
            served.job.publish(str(number))
        client = ClientConfig(url=served.url(STREAM), backoff=FAST_BACKOFF)
        with EventSource(client) as source:
            reports = source.reports()  # kept: closing the iteration closes the connection
            assert deliver(reports, 3) == ["0", "1", "2"]
            during = counters.metrics
            reports.close()
        assert during.connected_clients == 1
        assert during.events_published == 3
        wait_for(lambda: counters.metrics.connected_clients == 0, "the stream never ended")
        streamed = counters.metrics
        assert streamed.events_published == 3
        assert streamed.bytes_sent >= len(b"data: 0\n\n") * 3

        status, _, body = served.poll("/feed/poll", [("Last-Event-ID", "1")])
        assert status == 200
        assert b'"2"' in body
        wait_for(lambda: counters.metrics.connected_clients == 0, "the poll never ended")
        after = counters.metrics
        assert after.events_published == 4
        assert after.bytes_sent == streamed.bytes_sent + len(body)
        assert after.send_timeouts == after.queue_drops == after.replays_put_off == 0
        assert counters.metrics == after  # ended responses are summed once
    finally:
        served.close()


def flood(_: str) -> AsyncIterator[str]:
    """Events as fast as they can be taken, for ever."""

    async def run() -> AsyncIterator[str]:
        while True:
            yield "x" * 1000
            await asyncio.sleep(0)

    return run()


def serve_flood(name: str, make: Callable[[], Any]) -> tuple[tuple[str, int], Callable[[], None]]:
    """``make()``'s response at ``/flood``, in Starlette under uvicorn or aiohttp.web on a
    thread: the address and how to stop it."""
    if name == "starlette":
        async def endpoint(request: Any) -> Any:
            return make()

        runner = UvicornThread(starlette.applications.Starlette(
            routes=[starlette.routing.Route("/flood", endpoint)]
        ))
        return runner.address, runner.stop

    async def handler(request: Any) -> Any:
        return make()

    app = aiohttp.web.Application()
    app.router.add_get("/flood", handler)
    return aiohttp_thread(app)


@pytest.mark.parametrize("name", ["starlette", "aiohttp"])  # WSGI: no send_timeout
def test_a_client_that_stops_reading_is_counted_and_noted(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that reads nothing is let go after ``send_timeout``: its response counts
    one send timeout (and so do the shared counters), its audit trail notes the failure
    between the stream's start and its close, and it is no longer a connected client."""
    if uvicorn is None:
        if is_peer_required():
            raise AssertionError("starlette, uvicorn or aiohttp is missing: the peers extra")
        pytest.skip("starlette, uvicorn and aiohttp are the peers extra")
    # aiohttp also sets TCP_USER_TIMEOUT, which may drop the connection first (a write
    # error, not a timeout the response sees): out, so the response's own timer decides.
    monkeypatch.setattr(_aiohttp_response, "set_send_timeout", lambda sock, timeout: None)
    counters = ResponseCounters()
    responses: list[Any] = []
    kind = sse_asgi.StreamResponse if name == "starlette" else sse_aiohttp.StreamResponse

    def make() -> Any:
        response = kind(flood, config=ServerConfig(heartbeat_interval=None),
                        options=ServerOptions(send_timeout=0.5), counters=counters)
        responses.append(response)
        return response

    address, stop = serve_flood(name, make)
    try:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(address)
            sock.sendall(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_for(lambda: counters.metrics.send_timeouts == 1, "no send timeout counted")
            wait_for(lambda: counters.metrics.connected_clients == 0, "still connected")
        [response] = responses
        assert response.metrics.send_timeouts == 1
        assert response.metrics.connected_clients == 0
        assert response.metrics.events_published > 0
        trail = response.audit_trail
        kinds = [record.kind for record in trail.records]
        assert kinds[0] is AuditKind.REQUEST
        [failure] = trail.of_kind(AuditKind.FAILURE)
        assert failure.reason == "send timeout"
        assert kinds.index(AuditKind.FAILURE) > kinds.index(AuditKind.REQUEST)
        assert trail.of_kind(AuditKind.STATUS)[0].state is ServerState.STREAMING
    finally:
        stop()


def test_polls_count_their_resumes_in_the_shared_counters(framework: str) -> None:
    """Polls answered from a response's replay log count as the streams' resumes do: one
    from an evicted id in ``too_old_resumes``, one from an id the log cannot place in
    ``unknown_id_resumes``, one answered from the log after a known id in
    ``replays_served``; their bodies in ``bytes_sent``."""
    log = ReplayLog(ReplayConfig(max_events=2))
    for number in range(5):  # ids "0" .. "4"; the log keeps "3" and "4"
        log.append(Event(data=f"e{number}"), 0.0)
    counters = ResponseCounters()
    served = serve(framework, replay_log=log, counters=counters)
    try:
        bodies: list[bytes] = []
        for last_event_id in ("0", "elsewhere", "3"):
            status, _, body = served.poll(f"/feed/poll?lastEventId={last_event_id}&timeout=5")
            assert status == 200
            bodies.append(body)
            wait_for(lambda: counters.metrics.connected_clients == 0, "the poll never ended")
            assert counters.metrics.bytes_sent == sum(map(len, bodies))
        gaps = [json.loads(body)["gap"] for body in bodies]
        assert [(gap or {}).get("reason") for gap in gaps] == ["too_old", "unknown", None]
        metrics = counters.metrics
        assert (metrics.too_old_resumes, metrics.unknown_id_resumes, metrics.replays_served) == (
            1, 1, 1
        )
        assert served.job.started == 0  # every answer came from the log
    finally:
        served.close()


def test_a_polls_response_hands_out_the_polls_trail_and_figures() -> None:
    """A WSGI response that answered a too-old poll: its ``audit_trail`` is the poll's (the
    request, the gap with ``missed``, the answer, why it closed) and its ``metrics`` count
    the too-old resume and the body."""
    log = ReplayLog(ReplayConfig(max_events=2))
    for number in range(5):
        log.append(Event(data=f"e{number}"), 0.0)
    response = wsgi.StreamResponse(
        [], options=ServerOptions(path="/feed", long_poll_path="/feed/poll"), replay_log=log
    )
    _, _, body = response.start({"PATH_INFO": "/feed/poll", "QUERY_STRING": "lastEventId=0"})
    data = b"".join(body)
    trail = response.audit_trail
    assert [record.kind for record in trail.records] == [
        AuditKind.REQUEST, AuditKind.GAP, AuditKind.REPLAYED, AuditKind.STATUS,
    ]
    assert trail.records[0].last_event_id == "0"
    assert (trail.records[1].reason, trail.records[1].count) == ("too_old", 2)
    assert trail.records[2].count == 2
    assert trail.records[3].reason == "answered"
    metrics = response.metrics
    assert (metrics.too_old_resumes, metrics.bytes_sent, metrics.events_published) == (
        1, len(data), 2
    )
    assert metrics.connected_clients == 0


def test_an_empty_poll_response_says_whether_the_hold_ran_out_or_the_source_ended() -> None:
    """A WSGI response's poll answered with nothing closes "timed out" when its hold ran out
    with the source still waiting, and "the source ended" when the source was over first."""

    def slow(_: str) -> Iterator[str]:
        time.sleep(1.0)  # past the hold
        yield "late"

    options = ServerOptions(path="/feed", long_poll_path="/feed/poll")
    environ = {"PATH_INFO": "/feed/poll", "QUERY_STRING": "timeout=0.1"}
    reasons = []
    for source in (slow, []):
        response = wsgi.StreamResponse(source, options=options)
        _, _, body = response.start(environ)
        b"".join(body)
        closed = response.audit_trail.records[-1]
        assert (closed.kind, closed.state) == (AuditKind.STATUS, LongPollState.ANSWERED)
        assert response.audit_trail.of_kind(AuditKind.REPLAYED)[0].count == 0
        reasons.append(closed.reason)
    assert reasons == ["timed out", "the source ended"]
