"""``wait_for_subscribers``: every server says when clients have subscribed, instead of the
application polling ``len(server.broadcaster)``.

The asyncio, trio and sync servers are read by raw sockets on 127.0.0.1; the ASGI
``EventStream`` by in-memory ASGI peers (``test_asgi.Peer``) under both anyio backends.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import anyio
import pytest
import trio

from sse_core import InvalidConfigError, ServerConfig
from sse_core.adapters import asgi
from sse_core.adapters import asyncio as asyncio_adapter
from sse_core.adapters import sync as sync_adapter
from sse_core.adapters import trio as trio_adapter
from tests.adapters.test_asgi import Peer, peers, started

#: Seconds any one wait may take; only a failure ever waits this long.
TIMEOUT = 10.0
REQUEST = b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
QUIET = ServerConfig(heartbeat_interval=None)
#: A wait that must not end: long enough for a subscription to be seen on a loaded machine.
NOT_YET = 0.3


def test_asyncio_server_wakes_the_waiter_at_the_count() -> None:
    """A wait for two subscribers goes on while one is subscribed and ends when the second
    subscribes; a wait already satisfied returns at once; a count of 0 is refused."""

    async def scenario() -> None:
        async with asyncio_adapter.EventStreamServer(config=QUIET) as server:
            waiting = asyncio.ensure_future(server.wait_for_subscribers(2))
            first = await asyncio.open_connection(*server.address)
            first[1].write(REQUEST)
            await server.wait_for_subscribers()
            assert len(server.broadcaster) == 1
            done, _ = await asyncio.wait({waiting}, timeout=NOT_YET)
            assert not done
            second = await asyncio.open_connection(*server.address)
            second[1].write(REQUEST)
            await asyncio.wait_for(waiting, TIMEOUT)
            assert len(server.broadcaster) == 2
            await asyncio.wait_for(server.wait_for_subscribers(2), 0.001)
            assert not server._waiters  # nobody is left registered
            with pytest.raises(InvalidConfigError):
                await server.wait_for_subscribers(0)
            for _, writer in (first, second):
                writer.close()

    asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))


def test_asyncio_wait_cancelled_leaves_no_waiter() -> None:
    """A wait that times out (is cancelled) is forgotten: a later subscription wakes
    nothing stale."""

    async def scenario() -> None:
        async with asyncio_adapter.EventStreamServer(config=QUIET) as server:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_for_subscribers(), 0.05)
            assert not server._waiters

    asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))


def test_trio_server_wakes_the_waiter_at_the_count() -> None:
    """As for asyncio: the waiter for one subscriber is woken by the first client's
    subscription, not before."""

    async def scenario() -> None:
        async with trio_adapter.EventStreamServer(config=QUIET) as server:
            woken = trio.Event()

            async def wait() -> None:
                await server.wait_for_subscribers(1)
                woken.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait)
                with trio.move_on_after(NOT_YET):
                    await woken.wait()
                assert not woken.is_set()
                stream = await trio.open_tcp_stream(*server.address)
                await stream.send_all(REQUEST)
                await woken.wait()
                assert len(server.broadcaster) == 1
                await server.wait_for_subscribers(1)  # satisfied: returns
                await stream.aclose()
            assert not server._waiters

    async def limited() -> None:
        with trio.fail_after(TIMEOUT):
            await scenario()

    trio.run(limited)


def test_sync_server_blocks_until_the_count_or_the_timeout() -> None:
    """The blocking wait returns False when the timeout passes first, True once a client
    (connecting from another thread) subscribed, and True at once when already so."""
    with sync_adapter.EventStreamServer(config=QUIET) as server:
        started_at = time.monotonic()
        assert server.wait_for_subscribers(timeout=NOT_YET) is False
        assert time.monotonic() - started_at >= NOT_YET * 0.9
        with socket.create_connection(server.address) as sock:
            connect = threading.Timer(0.05, sock.sendall, (REQUEST,))
            connect.start()
            assert server.wait_for_subscribers(1, timeout=TIMEOUT) is True
            assert len(server.broadcaster) == 1
            assert server.wait_for_subscribers(1, timeout=0) is True
            connect.join()
        assert not server._waiters
        with pytest.raises(InvalidConfigError):
            server.wait_for_subscribers(timeout=-1)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_asgi_event_stream_wakes_the_waiter() -> None:
    """The ASGI EventStream's wait ends when a request subscribes, under both backends."""
    stream = asgi.EventStream(config=QUIET)
    peer = Peer()
    woken = anyio.Event()

    async def wait() -> None:
        await stream.wait_for_subscribers()
        woken.set()

    with peers(peer):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(wait)
            with anyio.move_on_after(NOT_YET):
                await woken.wait()
            assert not woken.is_set()
            tasks.start_soon(peer.run, stream)
            await started(peer)
            with anyio.fail_after(TIMEOUT):
                await woken.wait()
            peer.disconnect()
