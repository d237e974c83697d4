"""Tests of the httpx driver under trio (``sse_core.adapters.httpx.TrioEventSource``) against
real servers: sse_core's trio ``EventStreamServer`` (in process), hand-written trio peers (a
silent server, a 204), FastAPI's ``StreamResponse`` app under uvicorn, the project's
``FaultProxy`` (in a thread of its own: it is asyncio) for cuts, and a real ``tinyproxy``.
No mocks: every byte crosses a socket.

Every test runs in the trio adapter's ``run()``: a hang limit, and no file descriptor left
open (no connection leaks); every source is used as its ``async with`` block, which returns
only once every task it started has ended (no task leaks).
"""

from __future__ import annotations

import ast
import functools
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio

import sse_core
from sse_core import ClientState, Deliver, Event, ReportGap, ReportStatus, ServerConfig, StreamError
from sse_core.adapters import ClientOptions, ServerOptions
from sse_core.adapters.trio import EventStreamServer
from sse_core.state import SequencerConfig
from sse_core.testing import CutAfter, Pass

httpx = pytest.importorskip("httpx", reason="httpx is in the peers extra")

import sse_core.adapters._httpx_trio as driver_module  # noqa: E402
from sse_core.adapters.httpx import TrioEventSource  # noqa: E402

from . import httpx_support as support  # noqa: E402
from . import test_response_servers as _servers  # noqa: E402
from .test_response_servers import Served  # noqa: E402
from .test_trio import (  # noqa: E402
    answered_204,
    closed_from_another_task,
    config,
    is_state,
    open_fds,
    raw_peer,
    read_head,
    replaced_after_a_stall,
    run,
    serving,
    states,
    until,
)

#: The real servers' fixture (uvicorn ...), and a real tinyproxy on loopback.
served = _servers.served
tinyproxy = support.tinyproxy

DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "adapters" / "httpx.rst"


def resumed_from(server: EventStreamServer, last_event_id: str) -> bool:
    """Whether the server's only subscriber asked to resume after ``last_event_id``."""
    return [s.session.last_event_id for s in server.broadcaster] == [last_event_id]


def request_tasks() -> int:
    """How many of the driver's request tasks run now, in the whole trio run."""
    count = 0
    root = trio.lowlevel.current_root_task()
    assert root is not None
    tasks = [root]
    while tasks:
        task = tasks.pop()
        count += task.coro.__qualname__ == "_Exchange.run"
        tasks += [child for nursery in task.child_nurseries for child in nursery.child_tasks]
    return count


async def streaming(source: TrioEventSource) -> Any:
    """The source's reports, read up to its first STREAMING status."""
    reports = source.reports()
    while not is_state(await reports.__anext__(), ClientState.STREAMING):
        pass
    return reports


@pytest.mark.parametrize("is_body_decoded", [False, True], ids=["session-decodes",
                                                               "httpx-decodes"])
def test_a_gzip_stream_is_decoded_once_whoever_decodes(is_body_decoded: bool) -> None:
    """Against the trio server with gzip on: the body is decoded once, by the session (read
    as sent) or, with ``is_body_decoded``, by httpx (read decoded); never a bad gzip body
    (decoded twice) or gzip parsed as text, so no reconnection."""

    async def body() -> None:
        server = EventStreamServer(config=ServerConfig(heartbeat_interval=None,
                                                       is_compression_enabled=True))
        sent = [f"{i} " + "compressible " * 50 for i in range(30)]
        got: list[str] = []
        async with serving(server) as url, httpx.AsyncClient() as client, TrioEventSource(
            client, config(url, is_body_decoded=is_body_decoded)
        ) as source:
            async for report in source.reports():
                if is_state(report, ClientState.STREAMING):
                    for data in sent:
                        server.publish(Event(data=data))
                if isinstance(report, Deliver):
                    got.append(report.event.data)
                    if len(got) == len(sent):
                        break
        assert got == sent
        assert {s.session.content_encoding for s in server.broadcaster} <= {"gzip"}
        assert source.metrics.reconnections == 0

    run(body)


def test_events_arrive_in_order_exactly_once_over_the_users_client() -> None:
    """Published events reach the driver in order, once each, with their ids; the statuses
    go CONNECTING, CONNECTED, STREAMING; the client's default headers reach the server;
    leaving the block ends quietly (CLOSED last) and leaves the client open for its owner."""
    keys: list[str | None] = []

    async def body() -> None:
        key = support.recording("x-api-key", keys)
        server = EventStreamServer(options=ServerOptions(connection_key=key))
        seen: list[ReportStatus] = []
        reports: list[Any] = []
        async with serving(server) as url, httpx.AsyncClient(headers={"X-Api-Key": "k1"}) as client:
            async with TrioEventSource(client, config(url), on_status=seen.append) as source:
                async for report in source.reports():
                    reports.append(report)
                    if is_state(report, ClientState.STREAMING):
                        stored = [server.publish(Event(data=f"n{i}\nline two")) for i in range(50)]
                    if sum(isinstance(r, Deliver) for r in reports) == 50:
                        break
            assert not client.is_closed
        events = [r.event for r in reports if isinstance(r, Deliver)]
        assert [(e.data, e.id) for e in events] == [
            (f"n{i}\nline two", s.id) for i, s in enumerate(stored)
        ]
        assert states(reports) == [
            ClientState.CONNECTING, ClientState.CONNECTED, ClientState.STREAMING
        ]
        assert seen[-1].state is ClientState.CLOSED
        assert keys == ["k1"]
        assert source.metrics.connection_attempts == 1

    run(body)


def test_a_cut_stream_resumes_with_last_event_id() -> None:
    """The fault proxy cuts the connection in the middle of the stream; the driver
    reconnects through the same client with the last id it got and receives every event
    exactly once (dedup off, so a duplicate would show). One request task runs at a time,
    none after the block."""

    async def body() -> None:
        server = EventStreamServer(
            config=ServerConfig(heartbeat_interval=None, is_compression_enabled=False)
        )
        async with serving(server) as url, httpx.AsyncClient() as client:
            host, port = url.removeprefix("http://").split("/")[0].split(":")
            with support.ProxyThread((host, int(port))) as proxy:
                source = TrioEventSource(client, config(
                    "http://{}:{}/events".format(*proxy.address), dedup=None
                ))
                data: list[str] = []
                ids: list[str] = []
                reasons: list[str | None] = []
                async with source:
                    async for report in source.reports():
                        if isinstance(report, ReportStatus):
                            if report.state is ClientState.RECONNECTING:
                                reasons.append(report.reason)
                            elif report.state is ClientState.STREAMING and not ids:
                                ids += [server.publish(Event(data=f"e{i}")).id for i in range(3)]
                            elif report.state is ClientState.CONNECTED and ids:
                                # the new request carried the last id; the old stream is gone
                                await until(functools.partial(resumed_from, server, ids[-1]))
                                ids += [
                                    server.publish(Event(data=f"e{i}")).id for i in range(3, 6)
                                ]
                        elif isinstance(report, Deliver):
                            data.append(report.event.data)
                            assert report.event.id == ids[len(data) - 1]
                            if len(data) == 3:
                                assert await trio.to_thread.run_sync(proxy.cut_all) == 1
                            if len(data) == 6:
                                # the cut response's task ended; only the new one is left
                                await until(lambda: request_tasks() == 1)
                                break
                assert request_tasks() == 0
        assert data == [f"e{i}" for i in range(6)]
        assert len(reasons) == 1 and "incomplete chunked read" in str(reasons[0]), reasons
        assert source.metrics.reconnections == 1

    run(body)


def test_an_http_error_raises_http_status_error_with_status_and_body() -> None:
    """A 404 ends the plain loop with HTTPStatusError carrying the status, the headers and
    the first bytes of the body; nothing is retried."""

    async def body() -> None:
        async with serving(EventStreamServer()) as url:
            await support.raises_for_404(TrioEventSource, url)

    run(body)


def test_204_ends_the_iteration_quietly() -> None:
    """A 204 tells an EventSource to stop: the loop ends without an exception after one
    request."""

    async def body() -> None:
        async with httpx.AsyncClient() as client:
            await answered_204(lambda url: TrioEventSource(client, config(url)))

    run(body)


def test_a_refused_connection_is_retried_then_given_up_with_stream_error() -> None:
    """Nothing listens on the port: each request fails in the user's client (ConnectError),
    the session reconnects with backoff and gives up after two attempts: StreamError."""
    run(functools.partial(support.gives_up_on_a_refused_port, TrioEventSource))


def test_a_stalled_server_is_replaced_after_stall_timeout() -> None:
    """A server that sends the head and one event, then nothing, is taken for dead after
    stall_timeout: the session ends the attempt (the task reading it is cancelled, its
    response closed) and a new request carries Last-Event-ID; the replayed duplicate is
    dropped."""

    async def body() -> None:
        async with httpx.AsyncClient() as client:
            reports = await replaced_after_a_stall(
                lambda url: TrioEventSource(client, config(url, stall_timeout=0.3))
            )
        reasons = [r.reason for r in reports if is_state(r, ClientState.RECONNECTING)]
        assert len(reasons) == 1 and "stall" in str(reasons[0]), reasons

    run(body)


def test_a_quiet_stream_outlives_the_clients_read_timeout() -> None:
    """The user's client has a 0.2 s timeout; the stream stays quiet for 1 s and is not cut:
    the driver leaves reads unbounded (the stall timeout, off here, replaces that)."""

    async def body() -> None:
        server = EventStreamServer(config=ServerConfig(heartbeat_interval=None))
        async with (
            serving(server) as url,
            httpx.AsyncClient(timeout=0.2) as client,
            TrioEventSource(client, config(url, stall_timeout=None)) as source,
        ):
            reports = await streaming(source)
            await trio.sleep(1.0)
            server.publish(Event(data="after the silence"))
            report = await reports.__anext__()
            assert isinstance(report, Deliver) and report.event.data == "after the silence"
            assert source.metrics.connection_attempts == 1

    run(body)


def test_cancelled_waits_lose_no_byte_and_keep_the_connection() -> None:
    """``move_on_after`` around one step of the loop gives up that wait, never the read:
    with 200 events published 2 ms apart while each step may wait 1 ms at most (so most
    steps are cancelled while the body's read is in flight), each event arrives once, in
    order, on the first connection (httpcore closes a connection whose read is cancelled)."""

    async def body() -> None:
        server = EventStreamServer(config=ServerConfig(is_compression_enabled=False))
        sent = [f"{i} " + "x" * (i * 37 % 3000) for i in range(200)]

        async def publish() -> None:
            for data in sent:
                server.publish(Event(data=data))
                await trio.sleep(0.002)

        async with (
            serving(server) as url,
            httpx.AsyncClient() as client,
            TrioEventSource(client, config(url)) as source,
            trio.open_nursery() as nursery,
        ):
            reports = await streaming(source)
            with trio.move_on_after(0.05) as scope:
                await reports.__anext__()
            assert scope.cancelled_caught
            nursery.start_soon(publish)
            got: list[str] = []
            cancelled = 0
            while len(got) < len(sent):
                with trio.move_on_after(0.001) as scope:
                    report = await reports.__anext__()
                    if isinstance(report, Deliver):
                        got.append(report.event.data)
                cancelled += scope.cancelled_caught
            assert got == sent
            assert cancelled > 50  # the race under test did happen, often
            assert source.metrics.connection_attempts == 1
            assert len(server.broadcaster) == 1

    run(body)


def test_a_session_deadline_that_does_not_end_the_attempt_keeps_the_read() -> None:
    """A sequencer hole times out while the body's read is in flight (the session's
    deadline ends the wait, not the attempt): the gap is reported, the held event and the
    next one arrive on the same connection (a cancelled read would have closed it)."""
    connections: list[bytes] = []

    async def peer(stream: trio.SocketStream) -> None:
        connections.append(await read_head(stream))
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
            b"id: 1\ndata: a\n\nid: 3\ndata: c\n\n"
        )
        await trio.sleep(0.4)  # well past the hole's timeout
        await stream.send_all(b"id: 4\ndata: d\n\n")
        await trio.sleep_forever()

    async def body() -> None:
        gaps = SequencerConfig(gap_timeout=0.1)
        async with raw_peer(peer) as port, httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{port}/events"
            seen: list[str] = []
            async with TrioEventSource(client, config(url, sequencer=gaps)) as source:
                async for report in source.reports():
                    if isinstance(report, ReportGap):
                        seen.append(f"gap {report.first}-{report.last}")
                    elif isinstance(report, Deliver):
                        seen.append(report.event.data)
                    if len(seen) == 4:
                        break
        assert seen == ["a", "gap 2-2", "c", "d"]
        assert len(connections) == 1
        assert source.metrics.connection_attempts == 1

    run(body)


def test_aclose_from_another_task_ends_the_iteration() -> None:
    """aclose() while another task waits for the next event ends that task's loop quietly;
    the server sees the connection go and nothing after it is delivered."""

    async def body() -> None:
        server = EventStreamServer()
        async with (
            serving(server) as url,
            httpx.AsyncClient() as client,
            TrioEventSource(client, config(url)) as source,
        ):
            assert await closed_from_another_task(source, server) == []

    run(body)


def test_client_options_timeout_ends_the_iteration_quietly() -> None:
    """``ClientOptions(timeout=0.5)`` closes the source after half a second of streaming:
    the plain loop ends without an exception, the last status is CLOSED with the reason,
    and the connection is closed."""

    async def body() -> None:
        server = EventStreamServer(config=ServerConfig(heartbeat_interval=0.1))
        seen: list[ReportStatus] = []
        async with serving(server) as url, httpx.AsyncClient() as client:
            source = TrioEventSource(
                client, config(url), options=ClientOptions(timeout=0.5), on_status=seen.append
            )
            started = trio.current_time()
            async with source:
                async for _ in source:
                    raise AssertionError("no event expected")
            assert 0.5 <= trio.current_time() - started < 5.0
            await until(lambda: len(server.broadcaster) == 0)
        assert ClientState.STREAMING in [s.state for s in seen]
        assert seen[-1].state is ClientState.CLOSED
        assert "ClientOptions.timeout" in str(seen[-1].reason)

    run(body)


def test_cancelling_the_block_closes_the_response() -> None:
    """Cancelling the scope around ``async with source:`` while it streams ends the
    source's task and closes its response at once: the server sees the connection go, and
    the block returns only after that (no task outlives it)."""

    async def body() -> None:
        server = EventStreamServer()
        async with serving(server) as url, httpx.AsyncClient() as client:
            with trio.CancelScope() as scope:
                async with TrioEventSource(client, config(url)) as source:
                    async for report in source.reports():
                        if is_state(report, ClientState.STREAMING):
                            server.publish(Event(data="one"))
                        if isinstance(report, Deliver):
                            scope.cancel()
                            await trio.sleep_forever()
            assert scope.cancelled_caught
            await until(lambda: len(server.broadcaster) == 0)
            assert source.session.state is ClientState.CLOSED

    run(body)


def test_misuse_is_refused_with_a_clear_message() -> None:
    """A blocking httpx.Client is refused at construction; iterating outside the ``async
    with`` block raises RuntimeError saying to use the block; a second block is refused."""
    refused = pytest.raises(sse_core.InvalidConfigError, match="AsyncClient")
    with httpx.Client() as sync_client, refused:
        TrioEventSource(sync_client, "http://127.0.0.1:1/events")  # type: ignore[arg-type,unused-ignore]

    async def body() -> None:
        async with httpx.AsyncClient() as client:
            source = TrioEventSource(client, "http://127.0.0.1:1/events")
            with pytest.raises(RuntimeError, match="async with source"):
                async for _ in source:
                    pass
            again = TrioEventSource(client, "http://127.0.0.1:1/events")
            async with again:
                pass
            with pytest.raises(RuntimeError, match="entered once"):
                async with again:
                    pass

    run(body)


# --- real ASGI servers, a real HTTP proxy ------------------------------------------------------


@pytest.mark.parametrize("served", ["uvicorn-fastapi", "hypercorn-h2c-fastapi"], indirect=True)
def test_a_post_streams_each_word_over_http1_and_http2_under_trio(served: Served) -> None:
    """The chat POST through the trio driver gets one event per word (gzip from the server,
    decoded by the session) over the protocol the user's client speaks: HTTP/2 with prior
    knowledge to hypercorn, on trio."""
    protocols: list[tuple[str, str | None]] = []

    async def note(response: Any) -> None:
        protocols.append((response.http_version, response.headers.get("content-encoding")))

    async def body() -> None:
        is_h2 = served.is_http2
        async with httpx.AsyncClient(
            http1=not is_h2, http2=is_h2, event_hooks={"response": [note]}
        ) as client:
            request = support.chat_config(config, served.url + "/chat")
            answer = await support.read_chat(TrioEventSource(client, request))
            assert answer == (support.WORDS, None)
        assert protocols == [("HTTP/2" if is_h2 else "HTTP/1.1", "gzip")]

    run(body)


@pytest.mark.parametrize("served", ["uvicorn-fastapi"], indirect=True)
def test_a_post_without_ids_cut_mid_stream_is_not_sent_again(served: Served) -> None:
    """The LLM case under trio: the first answer arrives whole (gzip off, so the proxy can
    measure it); the second is cut 20 bytes short. The driver raises StreamError
    (NOT_RESUMABLE), every word came once, and the proxy saw no third request."""

    async def body() -> None:
        host, port = served.url.removeprefix("http://").split(":")
        # No keep-alive: the second answer needs a connection of its own for the proxy to cut
        # (the first one's connection would go back to the pool: its body was read whole).
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits) as client:
            with support.ProxyThread((host, int(port)), plan=[Pass()]) as proxy:
                url = "http://{}:{}/chat".format(*proxy.address)
                request = support.chat_config(config, url, is_gzip_accepted=False)
                whole = await support.read_chat(TrioEventSource(client, request))
                assert whole == (support.WORDS, None)
                proxy.schedule(CutAfter(after_bytes=proxy.stats.bytes_downstream - 20))
                words, error = await support.read_chat(TrioEventSource(client, request))
                assert isinstance(error, StreamError)
                assert error.report.cause is sse_core.EndCause.NOT_RESUMABLE, error
                assert words == support.WORDS  # the words came; [DONE] was cut
                await trio.sleep(0.5)  # time for a reconnection that must not happen
                assert proxy.stats.accepted == 2

    run(body)


def test_the_driver_goes_through_the_users_http_proxy(tinyproxy: tuple[str, Path]) -> None:
    """With ``httpx.AsyncClient(proxy=...)`` the request goes through tinyproxy (its log
    shows the absolute-form request) and events stream through it live."""
    proxy_url, log = tinyproxy
    urls: list[str] = []

    async def body() -> None:
        server = EventStreamServer()
        async with serving(server) as url, httpx.AsyncClient(proxy=proxy_url) as client:
            urls.append(url)
            async with TrioEventSource(client, config(url)) as source:
                reports = await streaming(source)
                server.publish(Event(data="through the proxy"))
                report = await reports.__anext__()
                assert isinstance(report, Deliver) and report.event.data == "through the proxy"

    run(body)
    requests = support.proxied_requests(log)
    assert len(requests) == 1, requests
    assert requests[0] == f"GET {urls[0]} HTTP/1.1", requests


# --- docs, architecture ------------------------------------------------------------------------


def test_docs_trio_example_runs() -> None:
    """The trio example on docs/adapters/httpx.rst (its last code block) runs as written
    and leaves no connection open."""
    text = DOCS_PAGE.read_text(encoding="utf-8")
    blocks = re.findall(r"^\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text, re.M)
    assert blocks and "TrioEventSource" in blocks[-1]
    before = open_fds()
    exec(compile(textwrap.dedent(blocks[-1]), str(DOCS_PAGE), "exec"), {"__name__": "doc"})
    assert open_fds() - before == set()


def test_the_asyncio_driver_does_not_need_trio() -> None:
    """Without trio (the ``httpx`` extra alone), ``sse_core.adapters.httpx`` imports and
    serves the asyncio driver; asking for TrioEventSource names the extra to install."""
    program = textwrap.dedent("""
        import sys
        sys.modules["trio"] = None  # as if not installed
        import sse_core.adapters.httpx as driver
        assert driver.EventSource.__name__ == "EventSource"
        try:
            driver.TrioEventSource
        except ModuleNotFoundError as error:
            assert error.name == "trio" and "sse-core[httpx,trio]" in str(error), error
        else:
            raise AssertionError("TrioEventSource imported without trio")
    """)
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)


def test_the_trio_driver_does_not_import_asyncio() -> None:
    """The trio driver's module runs on trio alone (httpx reaches trio through anyio)."""
    tree = ast.parse(Path(driver_module.__file__).read_text(encoding="utf-8"))
    modules = {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "trio" in modules and "_trio_client" in modules
    assert "asyncio" not in modules
