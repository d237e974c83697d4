"""What every driver over the user's HTTP client does, one suite parametrised over the
drivers (httpx's ``AsyncClient``, aiohttp's ``ClientSession``), against real servers:
sse_core's own asyncio ``EventStreamServer`` (in process, gzip on), FastAPI's
``StreamResponse`` app under uvicorn, small scripted servers, the project's ``FaultProxy`` for
cuts, and a real ``tinyproxy`` on loopback as the user's HTTP proxy. No mocks: every byte
crosses a socket. What only one driver does is in ``test_httpx_driver.py`` and
``test_aiohttp_driver.py``.
"""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import pytest

from sse_core import (
    ClientState,
    EndCause,
    Event,
    HTTPStatusError,
    ReportStatus,
    ServerConfig,
    StreamError,
)
from sse_core.adapters import ClientOptions, IncomingRequest, ServerOptions
from sse_core.state import BackoffConfig
from sse_core.testing import CutAfter, FaultProxy, Pass

from . import drivers
from . import test_response_servers as _servers
from .drivers import WORDS, Driver, chat, free_port, proxied_requests, settle
from .test_asyncio import (
    Scripted,
    Watch,
    config,
    field,
    no_content,
    run,
    started_server,
    until,
)
from .test_response_servers import Served

#: Each driver in turn.
driver = drivers.driver
#: The real servers' fixture (uvicorn ...), used here for the ones each test names.
served = _servers.served
#: A real HTTP proxy on loopback.
tinyproxy = drivers.tinyproxy


def test_events_arrive_in_order_exactly_once_over_the_users_client(driver: Driver) -> None:
    """Published events reach the driver in order, once each; the statuses go CONNECTING,
    CONNECTED, STREAMING; the user's client's default headers reach the server; closing
    from another task ends the iteration quietly and leaves the client open for its
    owner."""
    keys: list[str | None] = []

    def key(request: IncomingRequest, address: str | None) -> str | None:
        keys.append(field(request, "x-api-key"))
        return address

    async def main() -> None:
        server, url = await started_server(options=ServerOptions(connection_key=key))
        statuses: list[ReportStatus] = []
        async with driver.client(headers={"X-Api-Key": "k1"}) as client:
            source = driver.source(client, config(url), on_status=statuses.append)
            watch = Watch(source)
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
            await watch.aclose()  # from this task, while the Watch's task iterates
            assert watch.error is None and statuses[-1].state is ClientState.CLOSED
            await until(lambda: len(server.broadcaster) == 0, "the server to see the close")
            assert not driver.is_closed(client)
        await server.aclose()

    run(main)


@pytest.mark.parametrize("is_body_decoded", [False, True], ids=["session-decodes",
                                                               "client-decodes"])
@pytest.mark.parametrize("is_gzip_accepted", [True, False], ids=["gzip", "identity"])
def test_gzip_and_identity_streams_decode_once_whoever_decodes(
    driver: Driver, is_gzip_accepted: bool, is_body_decoded: bool
) -> None:
    """Against sse_core's server with gzip on: the request asks for gzip or identity as the
    config says (never the client's own list: br, zstd ...), and the stream decodes exactly
    once, by the session (the default: the driver reads the body as sent) or by the client
    (``is_body_decoded``). An aiohttp session is set to the opposite ``auto_decompress`` on
    purpose: the driver's per-request setting wins, so the two decoders never both run or
    both skip (that would be a bad gzip body and a reconnection, or gzip bytes parsed as
    text)."""
    asked: list[str | None] = []

    def key(request: IncomingRequest, address: str | None) -> str | None:
        asked.append(field(request, "accept-encoding"))
        return address

    async def main() -> None:
        server, url = await started_server(
            config=ServerConfig(heartbeat_interval=None, is_compression_enabled=True),
            options=ServerOptions(connection_key=key),
        )
        async with driver.client(**driver.decoding(is_body_decoded)) as client:
            source = driver.source(client, config(
                url, is_gzip_accepted=is_gzip_accepted, is_body_decoded=is_body_decoded
            ))
            watch = Watch(source)
            await watch.until_state(ClientState.STREAMING)
            assert asked == ["gzip" if is_gzip_accepted else "identity"]
            sent = [f"{i} " + "compressible " * 50 for i in range(50)]
            for data in sent:
                server.publish(Event(data=data))
            await watch.until_events(50)
            assert [e.data for e in watch.events] == sent
            assert source.metrics.reconnections == 0
            await watch.aclose()
            assert watch.error is None
        await server.aclose()

    run(main)


def test_a_cut_stream_resumes_with_last_event_id(driver: Driver) -> None:
    """The fault proxy cuts the first connection in the middle of the stream; the driver
    reconnects through the same client with the last id it got and receives every event
    exactly once (dedup off, so a duplicate would show)."""

    async def main() -> None:
        server, _ = await started_server(config=ServerConfig(heartbeat_interval=None,
                                                             is_compression_enabled=False))
        async with FaultProxy(server.address) as proxy, driver.client() as client:
            host, port = proxy.address
            source = driver.source(client, config(f"http://{host}:{port}/events", dedup=None))
            watch = Watch(source)
            await watch.until_state(ClientState.STREAMING)
            ids = [server.publish(Event(data=f"e{i}")).id for i in range(3)]
            await watch.until_events(3)
            await proxy.cut_all()
            await watch.until_state(ClientState.CONNECTED, count=2)
            assert driver.cut_error in str(watch.statuses[-3].reason), watch.statuses
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


def test_a_quiet_stream_outlives_the_clients_timeouts(driver: Driver) -> None:
    """The user's client has short timeouts (httpx: 0.2 s; aiohttp: a 0.5 s total and a
    0.2 s read); the stream stays quiet for 1 s (no heartbeats) and is not cut: the driver
    bounds only the connect (the session's stall timeout, off here, is what replaces a
    silent connection)."""

    async def main() -> None:
        server, url = await started_server()
        async with driver.client(**driver.short_timeouts()) as client:
            source = driver.source(client, config(url, stall_timeout=None))
            watch = Watch(source)
            await watch.until_state(ClientState.STREAMING)
            await asyncio.sleep(1.0)
            server.publish(Event(data="after the silence"))
            await watch.until_events(1)
            assert source.metrics.reconnections == 0
            assert ClientState.RECONNECTING not in watch.states
            await watch.aclose()
        await server.aclose()

    run(main)


def test_a_stalled_stream_is_replaced_by_the_session(driver: Driver) -> None:
    """With a 0.5 s stall timeout and a silent server, the session replaces the connection
    (the read in flight is dropped, its response closed) and the driver sends a new request
    on the same client."""

    async def main() -> None:
        server, url = await started_server()
        async with driver.client() as client:
            watch = Watch(driver.source(client, config(url, stall_timeout=0.5)))
            await watch.until_state(ClientState.CONNECTED, count=2)
            reasons = [s.reason for s in watch.statuses if s.state is ClientState.RECONNECTING]
            assert reasons and "stall" in str(reasons[0]), reasons
            await watch.aclose()
        await server.aclose()

    run(main)


def test_an_http_error_raises_http_status_error_with_status_and_body(driver: Driver) -> None:
    """A 404 ends the iteration with HTTPStatusError carrying the status, the headers and
    the first bytes of the body; nothing is retried. A client set to raise for an error
    status itself (aiohttp's ``raise_for_status=True``) does not get in the way."""

    async def main() -> None:
        server, url = await started_server()
        async with driver.client(**driver.raising_for_status()) as client:
            source = driver.source(client, config(url.replace("/events", "/nowhere")))
            with pytest.raises(HTTPStatusError) as caught:
                async for _ in source:
                    raise AssertionError("no event expected")
            assert caught.value.status == 404
            assert caught.value.body == b"not found\n"
            assert ("content-type", "text/plain; charset=utf-8") in caught.value.headers
            assert source.session.state is ClientState.CLOSED
            assert source.metrics.reconnections == 0
        await server.aclose()

    run(main)


def test_a_refused_connection_is_retried_then_given_up_with_stream_error(
    driver: Driver,
) -> None:
    """Nothing listens on the port: each request fails in the user's client, the session
    reconnects with backoff, and after two attempts it gives up: the plain loop raises
    StreamError (GAVE_UP) naming the client's error."""

    async def main() -> None:
        backoff = BackoffConfig(base_delay=0.02, min_base_delay=0.01, max_attempts=2)
        async with driver.client() as client:
            source = driver.source(
                client, config(f"http://127.0.0.1:{free_port()}/events", backoff=backoff)
            )
            with pytest.raises(StreamError) as caught:
                async for _ in source:
                    raise AssertionError("no event expected")
        assert caught.value.report.cause is EndCause.GAVE_UP
        assert driver.connect_error in caught.value.reason
        assert source.metrics.connection_attempts == 3

    run(main)


def test_a_204_ends_the_iteration_quietly(driver: Driver) -> None:
    """The server's 204 ("stop reconnecting") ends the plain loop without an exception and
    without a second request."""

    async def main() -> None:
        async with Scripted(no_content) as peer, driver.client() as client:
            source = driver.source(client, config(peer.url()))
            assert [event async for event in source] == []
            assert source.session.state is ClientState.CLOSED
            await settle()
            assert peer.connections == 1

    run(main)


def test_client_options_timeout_ends_the_iteration_quietly(driver: Driver) -> None:
    """``ClientOptions(timeout=0.5)`` closes the source after half a second of a live but
    quiet stream: the loop ends without an exception and the CLOSED status says why."""

    async def main() -> None:
        server, url = await started_server()
        statuses: list[ReportStatus] = []
        async with driver.client() as client:
            source = driver.source(
                client, config(url), options=ClientOptions(timeout=0.5),
                on_status=statuses.append,
            )
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert [event async for event in source] == []
            assert 0.4 < loop.time() - started < 5.0
        assert statuses[-1].state is ClientState.CLOSED
        assert statuses[-1].reason == "closed after ClientOptions.timeout (0.5 s)"
        await server.aclose()

    run(main)


def test_aclose_while_the_request_is_in_flight_ends_the_iteration(driver: Driver) -> None:
    """aclose() from another task while the server has not answered the request: the
    iteration ends without an exception, the request is cancelled and nothing is left
    running (``run`` checks for leftover tasks and unclosed transports)."""

    async def main() -> None:
        async with Scripted(no_content, is_request_read=False) as peer, \
                driver.client() as client:
            watch = Watch(driver.source(client, config(peer.url())))
            await until(lambda: peer.connections == 1, "the connection")
            assert watch.states == [ClientState.CONNECTING]
            await watch.aclose()
            assert watch.error is None
            assert watch.states == [ClientState.CONNECTING]

    run(main)


def test_cancelling_the_iterating_task_closes_the_response(driver: Driver) -> None:
    """Cancelling the task that iterates inside ``async with`` propagates the cancellation
    and still closes the source: the server sees the stream go."""

    async def main() -> None:
        server, url = await started_server()
        async with driver.client() as client:
            events: list[Event] = []

            async def consume() -> None:
                async with driver.source(client, config(url)) as source:
                    async for event in source:
                        events.append(event)

            task = asyncio.create_task(consume())
            await until(lambda: len(server.broadcaster) == 1, "the subscriber")
            server.publish(Event(data="one"))
            await until(lambda: len(events) == 1, "the event")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await until(lambda: len(server.broadcaster) == 0, "the server to see the close")
        await server.aclose()

    run(main)


# --- a real ASGI server -----------------------------------------------------------------------


@pytest.mark.parametrize("served", ["uvicorn-fastapi"], indirect=True)
def test_a_post_without_ids_cut_mid_stream_is_not_sent_again(
    driver: Driver, served: Served
) -> None:
    """The LLM case: the answer is cut after its first words (the proxy measures the whole
    answer once, then cuts the next one 20 bytes short; the client opens a connection per
    request, so that the second one meets the cut). The driver raises StreamError
    (NOT_RESUMABLE), every word it got came once, and the proxy saw no third request."""

    async def main() -> None:
        host, port = served.url.removeprefix("http://").split(":")
        async with FaultProxy((host, int(port)), plan=[Pass()]) as proxy, \
                driver.client(**driver.one_connection_per_request()) as client:
            url = "http://{}:{}/chat".format(*proxy.address)
            source_of = partial(driver.source, client)
            whole, error = await chat(source_of, url, is_gzip_accepted=False)
            assert (whole, error) == (WORDS, None)
            total = proxy.stats.bytes_downstream
            proxy.schedule(CutAfter(after_bytes=total - 20))
            words, error = await chat(source_of, url, is_gzip_accepted=False)
            assert isinstance(error, StreamError)
            assert error.report.cause is EndCause.NOT_RESUMABLE, error
            assert words == WORDS  # the words came; [DONE] was cut
            await settle()
            assert proxy.stats.accepted == 2  # the cut POST was not sent again

    run(main)


# --- a real HTTP proxy ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["proxy", "trust_env"])
def test_the_driver_goes_through_the_users_http_proxy(
    driver: Driver, tinyproxy: tuple[str, Path], how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy is the user's client's: its ``proxy=`` setting, or ``trust_env=True`` with
    ``HTTP_PROXY`` in the environment. Either way the stream's request goes through
    tinyproxy (its log shows the absolute-form request) and events stream through it
    live."""
    proxy_url, log = tinyproxy
    urls: list[str] = []
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    if how == "trust_env":
        monkeypatch.setenv("HTTP_PROXY", proxy_url)

    async def main() -> None:
        server, url = await started_server()
        urls.append(url)
        settings = {"proxy": proxy_url} if how == "proxy" else {"trust_env": True}
        async with driver.client(**settings) as client:
            watch = Watch(driver.source(client, config(url)))
            await watch.until_state(ClientState.STREAMING)
            server.publish(Event(data="through the proxy"))
            await watch.until_events(1)
            assert watch.events[0].data == "through the proxy"
            await watch.aclose()
        await server.aclose()

    run(main)
    requests = proxied_requests(log)
    assert len(requests) == 1, requests
    assert requests[0] == f"GET {urls[0]} HTTP/1.1", requests
