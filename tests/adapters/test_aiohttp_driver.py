"""Tests of the aiohttp driver (sse_core.adapters.aiohttp) against real servers: sse_core's own
asyncio ``EventStreamServer`` (in process, gzip on), FastAPI's ``StreamResponse`` app under
uvicorn, small scripted servers, the project's ``FaultProxy`` for cuts, and a real
``tinyproxy`` on loopback as the user's HTTP proxy. No mocks: every byte crosses a socket.
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
    InvalidConfigError,
    ReportStatus,
    ServerConfig,
    StreamError,
)
from sse_core.adapters import ClientOptions, IncomingRequest, ServerOptions
from sse_core.state import BackoffConfig
from sse_core.testing import CutAfter, FaultProxy, Pass

aiohttp = pytest.importorskip("aiohttp", reason="aiohttp is in the peers extra")

from sse_core.adapters.aiohttp import EventSource  # noqa: E402

from . import drivers  # noqa: E402
from . import test_response_servers as _servers  # noqa: E402
from .drivers import WORDS, chat, free_port, proxied_requests, settle  # noqa: E402
from .test_asyncio import (  # noqa: E402
    Scripted,
    Watch,
    config,
    field,
    no_content,
    run,
    started_server,
    until,
)
from .test_response_servers import Served  # noqa: E402

#: The real servers' fixture (uvicorn ...), used here for the ones each test names.
served = _servers.served
#: A real HTTP proxy on loopback.
tinyproxy = drivers.tinyproxy


def test_events_arrive_in_order_exactly_once_over_the_users_session() -> None:
    """Published events reach the driver in order, once each; the statuses go CONNECTING,
    CONNECTED, STREAMING; the user's session's default headers reach the server; closing
    from another task ends the iteration quietly and leaves the session open for its
    owner."""
    keys: list[str | None] = []

    def key(request: IncomingRequest, address: str | None) -> str | None:
        keys.append(field(request, "x-api-key"))
        return address

    async def main() -> None:
        server, url = await started_server(options=ServerOptions(connection_key=key))
        statuses: list[ReportStatus] = []
        async with aiohttp.ClientSession(headers={"X-Api-Key": "k1"}) as client:
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
            await watch.aclose()  # from this task, while the Watch's task iterates
            assert watch.error is None and statuses[-1].state is ClientState.CLOSED
            await until(lambda: len(server.broadcaster) == 0, "the server to see the close")
            assert not client.closed
        await server.aclose()

    run(main)


@pytest.mark.parametrize("is_body_decoded", [False, True], ids=["session-decodes",
                                                               "aiohttp-decodes"])
@pytest.mark.parametrize("is_gzip_accepted", [True, False], ids=["gzip", "identity"])
def test_gzip_and_identity_streams_decode_once_whoever_decodes(
    is_gzip_accepted: bool, is_body_decoded: bool
) -> None:
    """Against sse_core's server with gzip on: the request asks for gzip or identity as the
    config says, and the stream decodes exactly once, by the session (the default: aiohttp
    hands over the body as sent) or by aiohttp (``is_body_decoded``). The user's session is
    set to the opposite ``auto_decompress`` on purpose: the driver's per-request setting
    wins, so the two decoders never both run or both skip (that would be a bad gzip body
    and a reconnection, or gzip bytes parsed as text)."""
    asked: list[str | None] = []

    def key(request: IncomingRequest, address: str | None) -> str | None:
        asked.append(field(request, "accept-encoding"))
        return address

    async def main() -> None:
        server, url = await started_server(
            config=ServerConfig(heartbeat_interval=None, is_compression_enabled=True),
            options=ServerOptions(connection_key=key),
        )
        async with aiohttp.ClientSession(auto_decompress=not is_body_decoded) as client:
            source = EventSource(client, config(
                url, is_gzip_accepted=is_gzip_accepted, is_body_decoded=is_body_decoded
            ))
            watch = Watch(source)  # type: ignore[arg-type]
            await watch.until_state(ClientState.STREAMING)
            assert asked == ["gzip" if is_gzip_accepted else "identity"]
            sent = [f"{i} " + "compressible " * 50 for i in range(50)]
            for data in sent:
                server.publish(Event(data=data))
            await watch.until_events(50)
            assert [e.data for e in watch.events] == sent
            assert source.metrics.reconnections == 0
            await watch.aclose()
        await server.aclose()

    run(main)


def test_a_cut_stream_resumes_with_last_event_id() -> None:
    """The fault proxy cuts the first connection in the middle of the stream; the driver
    reconnects through the same session with the last id it got and receives every event
    exactly once (dedup off, so a duplicate would show)."""

    async def main() -> None:
        server, _ = await started_server(config=ServerConfig(heartbeat_interval=None,
                                                             is_compression_enabled=False))
        async with FaultProxy(server.address) as proxy, aiohttp.ClientSession() as client:
            host, port = proxy.address
            source = EventSource(client, config(f"http://{host}:{port}/events", dedup=None))
            watch = Watch(source)  # type: ignore[arg-type]
            await watch.until_state(ClientState.STREAMING)
            ids = [server.publish(Event(data=f"e{i}")).id for i in range(3)]
            await watch.until_events(3)
            await proxy.cut_all()
            await watch.until_state(ClientState.CONNECTED, count=2)
            assert "ClientPayloadError" in str(watch.statuses[-3].reason), watch.statuses
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


def test_a_quiet_stream_outlives_the_sessions_timeouts() -> None:
    """The user's session has a 0.5 s total and a 0.2 s read timeout; the stream stays
    quiet for 1 s (no heartbeats) and is not cut: the driver bounds only the connect (the
    session's stall timeout, off here, is what replaces a silent connection)."""

    async def main() -> None:
        server, url = await started_server()
        timeout = aiohttp.ClientTimeout(total=0.5, sock_read=0.2)
        async with aiohttp.ClientSession(timeout=timeout) as client:
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
    (the read in flight is dropped, its response released) and the driver sends a new
    request on the same session."""

    async def main() -> None:
        server, url = await started_server()
        async with aiohttp.ClientSession() as client:
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
    the first bytes of the body; nothing is retried. The session's own
    ``raise_for_status=True`` does not get in the way: the status is the session's."""

    async def main() -> None:
        server, url = await started_server()
        async with aiohttp.ClientSession(raise_for_status=True) as client:
            source = EventSource(client, config(url.replace("/events", "/nowhere")))
            with pytest.raises(HTTPStatusError) as caught:
                async for _ in source:
                    raise AssertionError("no event expected")
            assert caught.value.status == 404
            assert caught.value.body == b"not found\n"
            assert dict(caught.value.headers)
            assert source.session.state is ClientState.CLOSED
            assert source.metrics.reconnections == 0
        await server.aclose()

    run(main)


def test_a_refused_connection_is_retried_then_given_up_with_stream_error() -> None:
    """Nothing listens on the port: each request fails in the user's session (aiohttp's
    ClientConnectorError), the session reconnects with backoff, and after two attempts it
    gives up: the plain loop raises StreamError (GAVE_UP) naming the cause."""

    async def main() -> None:
        backoff = BackoffConfig(base_delay=0.02, min_base_delay=0.01, max_attempts=2)
        async with aiohttp.ClientSession() as client:
            source = EventSource(
                client, config(f"http://127.0.0.1:{free_port()}/events", backoff=backoff)
            )
            with pytest.raises(StreamError) as caught:
                async for _ in source:
                    raise AssertionError("no event expected")
        assert caught.value.report.cause is EndCause.GAVE_UP
        assert "ClientConnectorError" in caught.value.reason
        assert source.metrics.connection_attempts == 3

    run(main)


def test_a_204_ends_the_iteration_quietly() -> None:
    """The server's 204 ("stop reconnecting") ends the plain loop without an exception and
    without a second request."""

    async def main() -> None:
        async with Scripted(no_content) as peer, aiohttp.ClientSession() as client:
            source = EventSource(client, config(peer.url()))
            assert [event async for event in source] == []
            assert source.session.state is ClientState.CLOSED
            await settle()
            assert peer.connections == 1

    run(main)


def test_client_options_timeout_ends_the_iteration_quietly() -> None:
    """``ClientOptions(timeout=0.5)`` closes the source after half a second of a live but
    quiet stream: the loop ends without an exception and the CLOSED status says why."""

    async def main() -> None:
        server, url = await started_server()
        statuses: list[ReportStatus] = []
        async with aiohttp.ClientSession() as client:
            source = EventSource(
                client, config(url), options=ClientOptions(timeout=0.5),
                on_status=statuses.append,
            )
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert [event async for event in source] == []
            assert 0.4 < loop.time() - started < 5.0
        assert statuses[-1].state is ClientState.CLOSED
        assert "ClientOptions.timeout" in str(statuses[-1].reason)
        await server.aclose()

    run(main)


def test_aclose_while_the_request_is_in_flight_ends_the_iteration() -> None:
    """aclose() from another task while the server has not answered the request: the
    iteration ends without an exception, the request is cancelled and nothing is left
    running (``run`` checks for leftover tasks and unclosed transports)."""

    async def main() -> None:
        async with Scripted(no_content, is_request_read=False) as peer, \
                aiohttp.ClientSession() as client:
            watch = Watch(EventSource(client, config(peer.url())))  # type: ignore[arg-type]
            await until(lambda: peer.connections == 1, "the connection")
            assert watch.states == [ClientState.CONNECTING]
            await watch.aclose()
            assert watch.error is None
            assert watch.states == [ClientState.CONNECTING]

    run(main)


def test_cancelling_the_iterating_task_releases_the_response() -> None:
    """Cancelling the task that iterates inside ``async with`` propagates the cancellation
    and still closes the source: the server sees the stream go."""

    async def main() -> None:
        server, url = await started_server()
        async with aiohttp.ClientSession() as client:
            events: list[Event] = []

            async def consume() -> None:
                async with EventSource(client, config(url)) as source:
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


def test_the_client_must_be_an_aiohttp_client_session() -> None:
    """Anything but an ``aiohttp.ClientSession`` is refused at construction."""
    with pytest.raises(InvalidConfigError, match=r"aiohttp\.ClientSession"):
        EventSource(object(), "http://127.0.0.1:1/events")  # type: ignore[arg-type]


# --- a real ASGI server -----------------------------------------------------------------------


@pytest.mark.parametrize("served", ["uvicorn-fastapi"], indirect=True)
def test_post_streams_each_word(served: Served) -> None:
    """A POST with a JSON body gets one event per word, gzip-compressed by the server and
    decoded by the session."""
    encodings: list[str | None] = []

    async def seen(session: object, context: object, params: object) -> None:
        encodings.append(params.response.headers.get("Content-Encoding"))  # type: ignore[attr-defined]

    async def main() -> None:
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(seen)
        async with aiohttp.ClientSession(trace_configs=[trace]) as client:
            words, error = await chat(partial(EventSource, client), served.url + "/chat")
        assert error is None
        assert words == WORDS

    run(main)
    assert encodings == ["gzip"]


@pytest.mark.parametrize("served", ["uvicorn-fastapi"], indirect=True)
def test_a_post_without_ids_cut_mid_stream_is_not_sent_again(served: Served) -> None:
    """The LLM case: the answer is cut after its first words (the proxy measures the whole
    answer once, then cuts the next one 20 bytes short; the user's connector opens a
    connection per request, so that the second one meets the cut). The driver raises
    StreamError (NOT_RESUMABLE), every word it got came once, and the proxy saw no third
    request."""

    async def main() -> None:
        host, port = served.url.removeprefix("http://").split(":")
        connector = aiohttp.TCPConnector(force_close=True)
        async with FaultProxy((host, int(port)), plan=[Pass()]) as proxy, \
                aiohttp.ClientSession(connector=connector) as client:
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


@pytest.mark.parametrize("how", ["proxy", "trust_env"])
def test_the_driver_goes_through_the_users_http_proxy(
    tinyproxy: tuple[str, Path], how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy is the user's session's: ``ClientSession(proxy=...)``, or
    ``trust_env=True`` with ``HTTP_PROXY`` in the environment. Either way the stream's
    request goes through tinyproxy (its log shows the absolute-form request) and events
    stream through it live."""
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
        async with aiohttp.ClientSession(**settings) as client:  # type: ignore[arg-type]
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
