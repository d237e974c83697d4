"""Tests of the httpx driver (sse_core.adapters.httpx) against real servers: sse_core's own
asyncio ``EventStreamServer`` (in process), FastAPI's ``StreamResponse`` app under uvicorn and
under hypercorn over HTTP/2 (h2c), the project's ``FaultProxy`` for cuts, and a real
``tinyproxy`` on loopback as the user's HTTP proxy. No mocks: every byte crosses a socket.
"""

from __future__ import annotations

import asyncio
import socket
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from sse_core import (
    ClientState,
    EndCause,
    Event,
    HTTPStatusError,
    InvalidConfigError,
    ReportStatus,
    ServerConfig,
    StreamError,
)
from sse_core.adapters import IncomingRequest, ServerOptions
from sse_core.state import BackoffConfig
from sse_core.testing import CutAfter, FaultProxy, Pass

httpx = pytest.importorskip("httpx", reason="httpx is in the peers extra")

from sse_core.adapters.httpx import EventSource  # noqa: E402

from . import drivers  # noqa: E402
from . import test_response_servers as _servers  # noqa: E402
from .drivers import WORDS, chat, proxied_requests, settle  # noqa: E402
from .test_asyncio import Watch, config, field, run, started_server, until  # noqa: E402
from .test_response_servers import Served  # noqa: E402

#: The real servers' fixture (uvicorn, hypercorn ...), used here for the ones each test names.
served = _servers.served
#: A real HTTP proxy on loopback.
tinyproxy = drivers.tinyproxy


def test_events_arrive_in_order_exactly_once_over_the_users_client() -> None:
    """Published events reach the driver in order, once each; the statuses go CONNECTING,
    CONNECTED, STREAMING; the user's client's default headers reach the server; closing
    ends the iteration quietly and leaves the client open for its owner."""

    keys: list[str | None] = []

    def key(request: IncomingRequest, address: str | None) -> str | None:
        keys.append(field(request, "x-api-key"))
        return address

    async def main() -> None:
        server, url = await started_server(options=ServerOptions(connection_key=key))
        statuses: list[ReportStatus] = []
        async with httpx.AsyncClient(headers={"X-Api-Key": "k1"}) as client:
            source = EventSource(client, config(url), on_status=statuses.append)
            watch = Watch(source)  # type: ignore[arg-type]
            await watch.until_state(ClientState.STREAMING)
            sent = [Event(data=f"event {i}\nline two", event="tick") for i in range(100)]
            stored = [server.publish(event) for event in sent]
            await watch.until_events(100)
            assert [(e.data, e.event, e.id) for e in watch.events] == [
                (e.data, e.event, s.id) for e, s in zip(sent, stored, strict=True)
            ]
            assert watch.states == [
                ClientState.CONNECTING, ClientState.CONNECTED, ClientState.STREAMING
            ]
            assert keys == ["k1"]
            await watch.aclose()
            assert watch.error is None and statuses[-1].state is ClientState.CLOSED
            assert not client.is_closed
        await server.aclose()

    run(main)


@pytest.mark.parametrize("is_gzip_accepted", [True, False])
def test_the_request_asks_for_what_the_session_decodes(is_gzip_accepted: bool) -> None:
    """Accept-Encoding is gzip when the config accepts it and identity otherwise, never
    httpx's own list (br, zstd ...); the session decodes the gzip body as sent."""
    asked: list[str | None] = []

    def key(request: IncomingRequest, address: str | None) -> str | None:
        asked.append(field(request, "accept-encoding"))
        return address

    async def main() -> None:
        server, url = await started_server(options=ServerOptions(connection_key=key))
        async with httpx.AsyncClient() as client:
            source = EventSource(client, config(url, is_gzip_accepted=is_gzip_accepted))
            watch = Watch(source)  # type: ignore[arg-type]
            await watch.until_state(ClientState.STREAMING)
            assert asked == ["gzip" if is_gzip_accepted else "identity"]
            sent = [f"{i} " + "compressible " * 50 for i in range(50)]
            for data in sent:
                server.publish(Event(data=data))
            await watch.until_events(50)
            assert [e.data for e in watch.events] == sent
            await watch.aclose()
        await server.aclose()

    run(main)


def test_a_cut_stream_resumes_with_last_event_id() -> None:
    """The fault proxy cuts the first connection in the middle of the stream; the driver
    reconnects through the same client with the last id it got and receives every event
    exactly once (dedup off, so a duplicate would show)."""

    async def main() -> None:
        server, _ = await started_server(config=ServerConfig(heartbeat_interval=None,
                                                             is_compression_enabled=False))
        async with FaultProxy(server.address) as proxy, httpx.AsyncClient() as client:
            host, port = proxy.address
            source = EventSource(client, config(f"http://{host}:{port}/events", dedup=None))
            watch = Watch(source)  # type: ignore[arg-type]
            await watch.until_state(ClientState.STREAMING)
            ids = [server.publish(Event(data=f"e{i}")).id for i in range(3)]
            await watch.until_events(3)
            await proxy.cut_all()
            await watch.until_state(ClientState.CONNECTED, count=2)
            assert "incomplete chunked read" in str(watch.statuses[-3].reason)
            await until(  # the new request carried the last id; the old stream is gone
                lambda: [s.session.last_event_id for s in server.broadcaster] == [ids[-1]],
                "the resumed subscriber alone",
            )
            ids += [server.publish(Event(data=f"e{i}")).id for i in range(3, 6)]
            await watch.until_events(6)
            assert [e.data for e in watch.events] == [f"e{i}" for i in range(6)]
            assert [e.id for e in watch.events] == ids
            assert source.metrics.reconnections == 1
            await watch.aclose()
        await server.aclose()

    run(main)


def test_a_quiet_stream_outlives_the_clients_read_timeout() -> None:
    """The user's client has a 0.2 s timeout; the stream stays quiet for 1 s (no
    heartbeats) and is not cut: the driver leaves reads unbounded (the session's stall
    timeout, off here, is what replaces a silent connection)."""

    async def main() -> None:
        server, url = await started_server()
        async with httpx.AsyncClient(timeout=0.2) as client:
            source = EventSource(client, config(url, stall_timeout=None))
            watch = Watch(source)  # type: ignore[arg-type]
            await watch.until_state(ClientState.STREAMING)
            await asyncio.sleep(1.0)
            server.publish(Event(data="after the silence"))
            await watch.until_events(1)
            assert source.metrics.reconnections == 0
            assert ClientState.RECONNECTING not in watch.states
            await watch.aclose()
        await server.aclose()

    run(main)


def test_a_stalled_stream_is_replaced_by_the_session() -> None:
    """With a 0.5 s stall timeout and a silent server, the session replaces the connection
    (the read in flight is dropped, its response closed) and the driver sends a new request
    on the same client."""

    async def main() -> None:
        server, url = await started_server()
        async with httpx.AsyncClient() as client:
            source = EventSource(client, config(url, stall_timeout=0.5))
            watch = Watch(source)  # type: ignore[arg-type]
            await watch.until_state(ClientState.CONNECTED, count=2)
            reasons = [s.reason for s in watch.statuses if s.state is ClientState.RECONNECTING]
            assert reasons and "stall" in str(reasons[0]), reasons
            await watch.aclose()
        await server.aclose()

    run(main)


def test_an_http_error_raises_http_status_error_with_status_and_body() -> None:
    """A 404 ends the iteration with HTTPStatusError carrying the status, the headers and
    the first bytes of the body; nothing is retried."""

    async def main() -> None:
        server, url = await started_server()
        async with httpx.AsyncClient() as client:
            source = EventSource(client, config(url.replace("/events", "/nowhere")))
            with pytest.raises(HTTPStatusError) as caught:
                async for _ in source:
                    raise AssertionError("no event expected")
            assert caught.value.status == 404
            assert caught.value.body  # the server's explanation
            assert dict(caught.value.headers)
            assert source.session.state is ClientState.CLOSED
            assert source.metrics.reconnections == 0
        await server.aclose()

    run(main)


def test_a_refused_connection_is_retried_then_given_up_with_stream_error() -> None:
    """Nothing listens on the port: each request fails in the user's client (httpx's
    ConnectError), the session reconnects with backoff, and after two attempts it gives up:
    the plain loop raises StreamError (GAVE_UP) naming the cause."""

    async def main() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # bound, not listening: refused
            backoff = BackoffConfig(base_delay=0.02, min_base_delay=0.01, max_attempts=2)
            async with httpx.AsyncClient() as client:
                source = EventSource(
                    client, config(f"http://127.0.0.1:{port}/events", backoff=backoff)
                )
                with pytest.raises(StreamError) as caught:
                    async for _ in source:
                        raise AssertionError("no event expected")
        assert caught.value.report.cause is EndCause.GAVE_UP
        assert "ConnectError" in caught.value.reason
        assert source.metrics.connection_attempts == 3

    run(main)


def test_the_client_must_be_an_httpx_async_client() -> None:
    """A blocking httpx.Client (or anything else) is refused at construction."""
    with httpx.Client() as client, pytest.raises(InvalidConfigError, match="AsyncClient"):
        EventSource(client, "http://127.0.0.1:1/events")  # type: ignore[arg-type]


# --- real ASGI servers ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "served", ["uvicorn-fastapi", "hypercorn-h2c-fastapi"], indirect=True
)
def test_post_streams_each_word_over_http1_and_http2(served: Served) -> None:
    """A POST with a JSON body gets one event per word, gzip-compressed by the server
    (decoded by the session); the user's client picks the protocol: HTTP/2 with
    prior knowledge to hypercorn."""
    versions: list[tuple[str, str | None]] = []

    async def seen(response: Any) -> None:
        versions.append((response.http_version, response.headers.get("content-encoding")))

    async def main() -> None:
        kwargs: dict[str, Any] = {"event_hooks": {"response": [seen]}}
        if served.is_http2:
            kwargs.update(http1=False, http2=True)
        async with httpx.AsyncClient(**kwargs) as client:
            words, error = await chat(partial(EventSource, client), served.url + "/chat")
        assert error is None
        assert words == WORDS

    run(main)
    assert versions == [("HTTP/2" if served.is_http2 else "HTTP/1.1", "gzip")]


@pytest.mark.parametrize("served", ["uvicorn-fastapi"], indirect=True)
def test_a_post_without_ids_cut_mid_stream_is_not_sent_again(served: Served) -> None:
    """The LLM case: the answer is cut after its first words (the proxy measures the whole
    answer once, then cuts the next one 20 bytes short). The driver raises StreamError
    (NOT_RESUMABLE), every word it got came once, and the proxy saw no third request."""

    async def main() -> None:
        host, port = served.url.removeprefix("http://").split(":")
        async with FaultProxy((host, int(port)), plan=[Pass()]) as proxy, \
                httpx.AsyncClient() as client:
            url = "http://{}:{}/chat".format(*proxy.address)
            whole, error = await chat(partial(EventSource, client), url, is_gzip_accepted=False)
            assert (whole, error) == (WORDS, None)
            total = proxy.stats.bytes_downstream
            proxy.schedule(CutAfter(after_bytes=total - 20))
            words, error = await chat(partial(EventSource, client), url, is_gzip_accepted=False)
            assert isinstance(error, StreamError)
            assert error.report.cause is EndCause.NOT_RESUMABLE, error
            assert words == WORDS  # the words came; [DONE] was cut
            await settle()
            assert proxy.stats.accepted == 2  # the cut POST was not sent again

    run(main)


# --- a real HTTP proxy ------------------------------------------------------------------------


def test_the_driver_goes_through_the_users_http_proxy(tinyproxy: tuple[str, Path]) -> None:
    """With ``httpx.AsyncClient(proxy=...)`` every request goes through tinyproxy (its log
    shows the stream's absolute-form request, the reconnection's too) and events stream
    through it live."""
    proxy_url, log = tinyproxy
    urls: list[str] = []

    async def main() -> None:
        server, url = await started_server()
        urls.append(url)
        async with httpx.AsyncClient(proxy=proxy_url) as client:
            watch = Watch(EventSource(client, config(url)))  # type: ignore[arg-type]
            await watch.until_state(ClientState.STREAMING)
            server.publish(Event(data="through the proxy"))
            await watch.until_events(1)
            assert watch.events[0].data == "through the proxy"
            await watch.aclose()
        await server.aclose()

    run(main)
    requests = proxied_requests(log)
    assert len(requests) == 1, requests
    assert requests[0].endswith(f": GET {urls[0]} HTTP/1.1"), requests
