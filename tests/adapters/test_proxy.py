"""The fault-injecting TCP proxy (sse_core/testing/_proxy.py): exact byte counts, the kind of
close each fault gives, live control, bounded buffers and a clean shutdown.

Every test runs a real asyncio upstream server and real client sockets on 127.0.0.1; clients
read with raw non-blocking sockets so that end of stream, a reset and silence are told apart
exactly.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import textwrap
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import sse_core.testing
from sse_core import InvalidConfigError, LocalProtocolError
from sse_core.testing import _proxy
from sse_core.testing._proxy import (
    CutAfter,
    Delay,
    FaultProxy,
    Pass,
    ProxyStats,
    Refuse,
    ResetAfter,
    StallAfter,
    random_fault,
)

PAYLOAD = "data: héllo wörld €\nid: 7\n\n".encode()
#: Counts that end between the bytes of one UTF-8 character.
MID_CHARACTER = [i for i, byte in enumerate(PAYLOAD) if byte & 0xC0 == 0x80]
#: Generous: fires only when something is broken, never on a slow machine.
TIMEOUT = 5.0
#: How long "nothing arrives" is watched for.
QUIET = 0.25

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 20))


class Upstream:
    """A plain asyncio server on 127.0.0.1 port 0 running ``make(self)`` per connection; it
    counts connections and keeps what clients sent; close() waits for every handler."""

    def __init__(self, make: Callable[[Upstream], Behaviour]) -> None:
        self.behaviour = make(self)
        self.connections = 0
        self.received = bytearray()
        self.ended: list[str] = []  # how each connection ended, seen from the server
        self._handlers: set[asyncio.Task[Any]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.handler_done = asyncio.Event()  # set when a connection's handler returns
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Upstream:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in self._writers:
            writer.transport.abort()
        if self._handlers:  # they see end of stream or a connection error, and return
            await asyncio.wait(self._handlers, timeout=TIMEOUT)
        assert not self._handlers, "an upstream handler did not finish"

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.append(writer)
        self.connections += 1
        try:
            await self.behaviour(reader, writer)
            self.ended.append("done")
        except ConnectionError:
            self.ended.append("error")
        finally:
            writer.transport.abort()
            self._handlers.discard(task)
            self.handler_done.set()

    async def drain_client(self, reader: asyncio.StreamReader) -> None:
        """Keep what the client sends until it ends its side."""
        while chunk := await reader.read(65536):
            self.received += chunk


def sends(payload: bytes) -> Callable[[Upstream], Behaviour]:
    """A server that sends ``payload`` then holds the connection open until the client ends."""

    def make(upstream: Upstream) -> Behaviour:
        async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(payload)
            await writer.drain()
            await upstream.drain_client(reader)

        return behaviour

    return make


async def connect(address: tuple[str, int], *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, address)
    return sock


async def read_to_end(sock: socket.socket, quiet: float = TIMEOUT) -> tuple[bytes, str]:
    """Read until end of stream ("eof"), a reset ("reset") or ``quiet`` seconds of silence
    ("open")."""
    loop = asyncio.get_running_loop()
    data = bytearray()
    while True:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), quiet)
        except ConnectionResetError:
            return bytes(data), "reset"
        except asyncio.TimeoutError:
            return bytes(data), "open"
        if not chunk:
            return bytes(data), "eof"
        data += chunk


async def read_exactly(sock: socket.socket, count: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = bytearray()
    while len(data) < count:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, count - len(data)), TIMEOUT)
        assert chunk, f"end of stream after {len(data)} of {count} bytes"
        data += chunk
    return bytes(data)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def proxy_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task.get_name().startswith("FaultProxy")}


# --- pass-through -----------------------------------------------------------------------------


def test_pass_through_is_byte_exact_both_ways() -> None:
    """1 MiB of random bytes sent through the proxy to an echo server comes back identical,
    the server received it identical, and both byte counters say so."""
    blob = random.Random(1).randbytes(1 << 20)

    def echo(upstream: Upstream) -> Behaviour:
        async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while chunk := await reader.read(65536):
                upstream.received += chunk
                writer.write(chunk)
                await writer.drain()
            writer.write_eof()
            await reader.read()  # until the proxy closes

        return behaviour

    async def main() -> None:
        async with Upstream(echo) as upstream, FaultProxy(upstream.address) as proxy:
            sock = await connect(proxy.address)
            loop = asyncio.get_running_loop()

            async def send() -> None:
                await loop.sock_sendall(sock, blob)
                sock.shutdown(socket.SHUT_WR)

            sending = asyncio.create_task(send())
            data, end = await read_to_end(sock)
            await sending
            sock.close()
            assert (len(data), end) == (len(blob), "eof")
            assert data == blob
            assert bytes(upstream.received) == blob
            stats = proxy.stats
            assert (stats.bytes_upstream, stats.bytes_downstream) == (len(blob), len(blob))
            assert stats.accepted == 1 and stats.faults_applied == 0

    run(main)


def test_half_close_is_relayed() -> None:
    """A server that ends its side while still reading: the client sees end of stream, and
    what it sends afterwards still reaches the server."""

    def make(upstream: Upstream) -> Behaviour:
        async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(PAYLOAD)
            writer.write_eof()
            await upstream.drain_client(reader)

        return behaviour

    async def main() -> None:
        async with Upstream(make) as upstream, FaultProxy(upstream.address) as proxy:
            sock = await connect(proxy.address)
            assert await read_to_end(sock) == (PAYLOAD, "eof")
            await asyncio.get_running_loop().sock_sendall(sock, b"after")
            sock.shutdown(socket.SHUT_WR)
            await asyncio.wait_for(upstream.handler_done.wait(), TIMEOUT)
            sock.close()
            assert bytes(upstream.received) == b"after"

    run(main)


def test_default_and_plan_order() -> None:
    """Connections take the plan's faults in accept order, then the default; pending shows
    what is left."""

    async def main() -> None:
        async with Upstream(sends(PAYLOAD)) as upstream:
            proxy = FaultProxy(upstream.address, plan=[CutAfter(after_bytes=3)],
                               default=CutAfter(after_bytes=5))
            proxy.schedule(CutAfter(after_bytes=4))
            assert proxy.pending == (CutAfter(after_bytes=3), CutAfter(after_bytes=4))
            async with proxy:
                for expected in (3, 4, 5, 5):
                    sock = await connect(proxy.address)
                    data, end = await read_to_end(sock)
                    sock.close()
                    assert (data, end) == (PAYLOAD[:expected], "eof")
                assert proxy.pending == ()
                proxy.default = Pass()
                sock = await connect(proxy.address)
                assert await read_exactly(sock, len(PAYLOAD)) == PAYLOAD
                sock.close()

    run(main)


# --- planned faults ---------------------------------------------------------------------------


@pytest.mark.parametrize("count", sorted({0, 1, 5, *MID_CHARACTER, len(PAYLOAD) - 1,
                                          len(PAYLOAD)}))
def test_cut_after_gives_exactly_n_bytes_then_eof(count: int) -> None:
    """CutAfter(n) delivers exactly n bytes (mid-line, mid-UTF-8 character) then a clean end
    of stream, and closes the upstream side too, although the server keeps its side open."""

    async def main() -> None:
        async with Upstream(sends(PAYLOAD)) as upstream:
            async with FaultProxy(upstream.address, plan=[CutAfter(after_bytes=count)]) as proxy:
                sock = await connect(proxy.address)
                data, end = await read_to_end(sock)
                sock.close()
                assert (data, end) == (PAYLOAD[:count], "eof")
                assert proxy.stats.cuts == 1
                assert proxy.stats.bytes_downstream == count
            assert upstream.connections == 1

    run(main)


def test_cut_closes_the_upstream_side() -> None:
    """After a cut the server's connection ends too (it is not left dangling)."""

    async def main() -> None:
        ended = asyncio.Event()

        def make(upstream: Upstream) -> Behaviour:
            async def behaviour(reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
                writer.write(PAYLOAD)
                await writer.drain()
                try:
                    await upstream.drain_client(reader)
                finally:
                    ended.set()

            return behaviour

        async with Upstream(make) as upstream, FaultProxy(
            upstream.address, plan=[CutAfter(after_bytes=4)]
        ) as proxy:
            sock = await connect(proxy.address)
            assert await read_to_end(sock) == (PAYLOAD[:4], "eof")
            await asyncio.wait_for(ended.wait(), TIMEOUT)
            sock.close()

    run(main)


def test_cut_after_more_than_sent_leaves_the_connection_open() -> None:
    """A count beyond what the server sends never fires: all bytes arrive and the
    connection stays open."""

    async def main() -> None:
        async with Upstream(sends(PAYLOAD)) as upstream, FaultProxy(
            upstream.address, plan=[CutAfter(after_bytes=len(PAYLOAD) + 5)]
        ) as proxy:
            sock = await connect(proxy.address)
            assert await read_to_end(sock, QUIET) == (PAYLOAD, "open")
            sock.close()
            assert proxy.stats.cuts == 0

    run(main)


@pytest.mark.parametrize("count", [0, 1, MID_CHARACTER[0], len(PAYLOAD)])
def test_reset_after_gives_exactly_n_bytes_then_a_reset(count: int) -> None:
    """ResetAfter(n) delivers exactly n bytes then ConnectionResetError at the client."""

    async def main() -> None:
        async with Upstream(sends(PAYLOAD)) as upstream, FaultProxy(
            upstream.address, plan=[ResetAfter(after_bytes=count)]
        ) as proxy:
            sock = await connect(proxy.address)
            data, end = await read_to_end(sock)
            sock.close()
            assert (data, end) == (PAYLOAD[:count], "reset")
            assert proxy.stats.resets == 1

    run(main)


def test_reset_after_loses_nothing_to_a_slow_reader() -> None:
    """A reset after 1 MiB to a client with a tiny receive buffer still delivers all 1 MiB
    first (the proxy waits until the client's kernel acknowledged them)."""
    count = 1 << 20

    async def main() -> None:
        async with Upstream(sends(bytes(range(256)) * (count // 128))) as upstream, FaultProxy(
            upstream.address, plan=[ResetAfter(after_bytes=count)]
        ) as proxy:
            sock = await connect(proxy.address, rcvbuf=4096)
            data, end = await read_to_end(sock)
            sock.close()
            assert (len(data), end) == (count, "reset")
            assert data == bytes(range(256)) * (count // 256)

    run(main)


def test_reset_after_gives_up_waiting_for_a_client_that_does_not_read() -> None:
    """A client that never reads still gets its reset, after flush_timeout, with a prefix of
    the bytes."""

    async def main() -> None:
        async with Upstream(sends(bytes(1 << 20))) as upstream, FaultProxy(
            upstream.address, plan=[ResetAfter(after_bytes=256 << 10)], flush_timeout=0.1
        ) as proxy:
            sock = await connect(proxy.address, rcvbuf=4096)
            await asyncio.wait_for(upstream.handler_done.wait(), TIMEOUT)  # the relay ended
            data, end = await read_to_end(sock)
            sock.close()
            assert end == "reset" and len(data) < 256 << 10
            assert proxy.stats.resets == 1

    run(main)


def test_stall_after_gives_n_bytes_then_silence_until_released() -> None:
    """StallAfter(n) delivers n bytes, then nothing either way while both sockets stay
    open; release() resumes the relay with nothing lost."""

    async def main() -> None:
        async with Upstream(sends(PAYLOAD)) as upstream, FaultProxy(
            upstream.address, plan=[StallAfter(after_bytes=9)]
        ) as proxy:
            sock = await connect(proxy.address)
            assert await read_exactly(sock, 9) == PAYLOAD[:9]
            await asyncio.get_running_loop().sock_sendall(sock, b"ping")
            assert await read_to_end(sock, QUIET) == (b"", "open")
            assert bytes(upstream.received) == b""  # nothing went upstream either
            assert proxy.stats.stalls == 1
            assert proxy.release() == 1
            assert await read_exactly(sock, len(PAYLOAD) - 9) == PAYLOAD[9:]
            sock.close()
            assert proxy.stats.bytes_upstream == 4

    run(main)


def test_stall_ends_with_the_proxy() -> None:
    """A stalled connection is closed by close(): the client sees end of stream."""

    async def main() -> None:
        async with Upstream(sends(PAYLOAD)) as upstream:
            proxy = FaultProxy(upstream.address, plan=[StallAfter(after_bytes=2)])
            await proxy.start()
            sock = await connect(proxy.address)
            assert await read_exactly(sock, 2) == PAYLOAD[:2]
            await proxy.close()
            assert await read_to_end(sock) == (b"", "eof")
            sock.close()

    run(main)


def test_refuse_resets_without_contacting_the_upstream() -> None:
    """Refuse() accepts then resets at once; the upstream never sees a connection."""

    async def main() -> None:
        async with Upstream(sends(PAYLOAD)) as upstream:
            async with FaultProxy(upstream.address, plan=[Refuse()]) as proxy:
                sock = await connect(proxy.address)
                assert await read_to_end(sock) == (b"", "reset")
                sock.close()
                assert (proxy.stats.refusals, proxy.stats.accepted) == (1, 1)
            assert upstream.connections == 0

    run(main)


def test_delay_adds_latency_but_not_per_chunk() -> None:
    """Delay(latency) holds every chunk at least that long, yet eight chunks sent 50 ms apart
    arrive in about latency + 350 ms, not eight latencies (the queue keeps throughput)."""
    latency, pieces, gap = 0.25, 8, 0.05

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sent_at: list[float] = []

        def make(upstream: Upstream) -> Behaviour:
            async def behaviour(reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
                for index in range(pieces):
                    sent_at.append(loop.time())
                    writer.write(b"%d" % index)
                    await writer.drain()
                    await asyncio.sleep(gap)  # the traffic's shape, not synchronisation
                await upstream.drain_client(reader)

            return behaviour

        async with Upstream(make) as upstream, FaultProxy(
            upstream.address, plan=[Delay(latency=latency)]
        ) as proxy:
            sock = await connect(proxy.address)
            first = await read_exactly(sock, 1)
            first_at = loop.time()
            rest = await read_exactly(sock, pieces - 1)
            last_at = loop.time()
            sock.close()
            assert first + rest == b"01234567"
            assert first_at - sent_at[0] >= latency
            assert last_at - sent_at[-1] >= latency
            assert last_at - sent_at[0] < pieces * latency * 0.8
            assert proxy.stats.delays == 1

    run(main)


def test_delay_then_cut() -> None:
    """Delay(then=CutAfter(n)) delivers n bytes no earlier than the latency, then a clean
    end of stream."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with Upstream(sends(PAYLOAD)) as upstream, FaultProxy(
            upstream.address, plan=[Delay(latency=0.1, then=CutAfter(after_bytes=8))]
        ) as proxy:
            start = loop.time()
            sock = await connect(proxy.address)
            assert await read_to_end(sock) == (PAYLOAD[:8], "eof")
            sock.close()
            assert loop.time() - start >= 0.1
            assert (proxy.stats.delays, proxy.stats.cuts) == (1, 1)

    run(main)


# --- upstream ---------------------------------------------------------------------------------


def test_upstream_switch_moves_new_connections_only() -> None:
    """Setting upstream sends later connections to the new server; an open connection stays
    with the old one; an unreachable upstream resets the client."""

    async def main() -> None:
        async with Upstream(sends(b"A")) as first, Upstream(sends(b"B")) as second:
            async with FaultProxy(first.address) as proxy:
                old = await connect(proxy.address)
                assert await read_exactly(old, 1) == b"A"
                proxy.upstream = second.address
                new = await connect(proxy.address)
                assert await read_exactly(new, 1) == b"B"
                await asyncio.get_running_loop().sock_sendall(old, b"still here")
                old.shutdown(socket.SHUT_WR)
                assert await read_to_end(old) == (b"", "eof")
                assert bytes(first.received) == b"still here"

                closed = socket.create_server(("127.0.0.1", 0))
                proxy.upstream = closed.getsockname()
                closed.close()  # nothing listens there now
                down = await connect(proxy.address)
                assert await read_to_end(down) == (b"", "reset")
                assert proxy.stats.upstream_failures == 1
                for sock in (old, new, down):
                    sock.close()
            assert (first.connections, second.connections) == (1, 1)

    run(main)


# --- live control -----------------------------------------------------------------------------


def test_live_cut_all_and_reset_all() -> None:
    """cut_all() ends every open connection with a FIN now, reset_all() with an RST; each
    returns how many it hit, and both are counted."""

    async def main() -> None:
        async with Upstream(sends(PAYLOAD)) as upstream, FaultProxy(
            upstream.address
        ) as proxy:
            socks = [await connect(proxy.address) for _ in range(2)]
            for sock in socks:
                assert await read_exactly(sock, len(PAYLOAD)) == PAYLOAD
            assert await proxy.cut_all() == 2
            for sock in socks:
                assert await read_to_end(sock) == (b"", "eof")
                sock.close()
            assert await proxy.cut_all() == 0

            sock = await connect(proxy.address)
            assert await read_exactly(sock, len(PAYLOAD)) == PAYLOAD
            assert await proxy.reset_all() == 1
            assert await read_to_end(sock) == (b"", "reset")
            sock.close()
            assert (proxy.stats.cuts, proxy.stats.resets) == (2, 1)

    run(main)


def test_live_stall_all() -> None:
    """stall_all() silences open connections until release(); a second stall_all() on a
    stalled connection counts nothing."""

    async def main() -> None:
        gate = asyncio.Event()

        def make(upstream: Upstream) -> Behaviour:
            async def behaviour(reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
                writer.write(b"first")
                await writer.drain()
                await gate.wait()
                writer.write(b"second")
                await writer.drain()
                await upstream.drain_client(reader)

            return behaviour

        async with Upstream(make) as upstream, FaultProxy(upstream.address) as proxy:
            sock = await connect(proxy.address)
            assert await read_exactly(sock, 5) == b"first"
            assert proxy.stall_all() == 1
            assert proxy.stall_all() == 0
            gate.set()
            assert await read_to_end(sock, QUIET) == (b"", "open")
            assert proxy.release() == 1
            assert await read_exactly(sock, 6) == b"second"
            sock.close()
            assert proxy.stats.stalls == 1

    run(main)


def test_wait_for_connections() -> None:
    """wait_for_connections(n) returns once n connections were accepted (refused ones
    count) and fails if the proxy closes first."""

    async def main() -> None:
        async with Upstream(sends(PAYLOAD)) as upstream:
            proxy = FaultProxy(upstream.address, plan=[Refuse()])
            await proxy.start()
            waiting = asyncio.create_task(proxy.wait_for_connections(2))
            first = await connect(proxy.address)
            await proxy.wait_for_connections(1)
            assert not waiting.done()
            second = await connect(proxy.address)
            await asyncio.wait_for(waiting, TIMEOUT)
            assert proxy.stats.accepted == 2
            never = asyncio.create_task(proxy.wait_for_connections(3))
            await asyncio.sleep(0)
            await proxy.close()
            with pytest.raises(LocalProtocolError, match="closed after 2 connections"):
                await asyncio.wait_for(never, TIMEOUT)
            for sock in (first, second):
                sock.close()

    run(main)


# --- bounds and cleanup -----------------------------------------------------------------------


def _firehose(total: int, progress: list[int]) -> Callable[[Upstream], Behaviour]:
    block = bytes(65536)

    def make(upstream: Upstream) -> Behaviour:
        async def behaviour(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            while progress[0] < total:
                writer.write(block)
                await writer.drain()
                progress[0] += len(block)

        return behaviour

    return make


async def _until_still(progress: list[int]) -> int:
    """Poll until ``progress`` stops growing (there is no event for "blocked")."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    last = -1
    while progress[0] != last and loop.time() < deadline:
        last = progress[0]
        await asyncio.sleep(0.2)
    return progress[0]


def test_a_client_that_does_not_read_blocks_the_server() -> None:
    """Backpressure crosses the proxy: with a client that never reads, the server's writes
    stop after a bounded amount (kernel buffers plus the proxy's bounded buffers)."""
    total = 256 << 20
    progress = [0]

    async def main() -> None:
        async with Upstream(_firehose(total, progress)) as upstream, FaultProxy(
            upstream.address
        ) as proxy:
            sock = await connect(proxy.address, rcvbuf=65536)
            sent = await _until_still(progress)
            assert 0 < sent < 32 << 20
            assert proxy.stats.bytes_downstream <= sent
            sock.close()

    run(main)


def test_delay_queue_is_bounded() -> None:
    """A long delay holds at most max_delayed_chunks chunks: the server is paused, not
    buffered without end, even though the client reads."""
    total = 256 << 20
    progress = [0]

    async def main() -> None:
        async with Upstream(_firehose(total, progress)) as upstream, FaultProxy(
            upstream.address, plan=[Delay(latency=60.0)], chunk_size=1024,
            max_delayed_chunks=4,
        ) as proxy:
            sock = await connect(proxy.address)
            reading = asyncio.create_task(read_to_end(sock))
            sent = await _until_still(progress)
            assert 0 < sent < 32 << 20
            assert proxy.stats.bytes_downstream == 0
            await proxy.close()
            assert await reading == (b"", "eof")
            sock.close()

    run(main)


def test_close_leaves_no_tasks_and_no_sockets() -> None:
    """close() with connections in every state (relaying, stalled, delayed with bytes
    queued, half-closed) ends every proxy task and closes every socket it opened."""

    async def main() -> None:
        tasks_before = asyncio.all_tasks()
        before = open_fds()
        async with Upstream(sends(PAYLOAD)) as upstream:
            proxy = FaultProxy(
                upstream.address,
                plan=[Pass(), StallAfter(after_bytes=3), Delay(latency=30.0), Pass()],
            )
            await proxy.start()
            socks = [await connect(proxy.address) for _ in range(4)]
            await proxy.wait_for_connections(4)
            assert await read_exactly(socks[0], len(PAYLOAD)) == PAYLOAD
            assert await read_exactly(socks[1], 3) == PAYLOAD[:3]
            socks[3].shutdown(socket.SHUT_WR)
            assert await read_exactly(socks[3], len(PAYLOAD)) == PAYLOAD
            assert proxy.stats.open == 4
            assert proxy_tasks()
            await proxy.close()
            assert proxy_tasks() == set()
            assert proxy.stats.open == 0
            await proxy.close()  # again: nothing to do
            for sock in socks:
                assert (await read_to_end(sock))[1] == "eof"
                sock.close()
        assert asyncio.all_tasks() == tasks_before
        assert open_fds() == before

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to count open sockets")
    run(main)


def test_lifecycle_misuse_is_refused() -> None:
    """address before start and start twice are LocalProtocolErrors; a proxy never started
    closes quietly."""

    async def main() -> None:
        proxy = FaultProxy(("127.0.0.1", 9))
        with pytest.raises(LocalProtocolError):
            proxy.address  # noqa: B018
        with pytest.raises(LocalProtocolError):
            await proxy.wait_for_connections(1)
        await proxy.start()
        with pytest.raises(LocalProtocolError):
            await proxy.start()
        await proxy.close()
        with pytest.raises(LocalProtocolError):
            proxy.address  # noqa: B018
        await FaultProxy(("127.0.0.1", 9)).close()

    run(main)


# --- records and randomness -------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: CutAfter(after_bytes=-1),
        lambda: ResetAfter(after_bytes=1.5),  # type: ignore[arg-type]
        lambda: StallAfter(after_bytes=True),
        lambda: Delay(latency=-0.1),
        lambda: Delay(latency=float("nan")),
        lambda: Delay(latency=1.0, then=Refuse()),  # type: ignore[arg-type]
        lambda: Delay(latency=1.0, then=Delay(latency=1.0)),  # type: ignore[arg-type]
        lambda: FaultProxy(("127.0.0.1", 0)),
        lambda: FaultProxy(("127.0.0.1", "80")),  # type: ignore[arg-type]
        lambda: FaultProxy(("127.0.0.1", 80), port=70000),
        lambda: FaultProxy(("127.0.0.1", 80), chunk_size=0),
        lambda: FaultProxy(("127.0.0.1", 80), max_delayed_chunks=0),
        lambda: FaultProxy(("127.0.0.1", 80), flush_timeout=-1.0),
        lambda: FaultProxy(("127.0.0.1", 80), plan=["cut"]),  # type: ignore[list-item]
        lambda: random_fault(random.Random(0), max_bytes=-1),
        lambda: random_fault(random.Random(0), max_bytes=5, max_latency=float("inf")),
    ],
)
def test_bad_configuration_is_refused(make: Callable[[], object]) -> None:
    """Out-of-range counts, latencies, addresses and non-faults raise InvalidConfigError."""
    with pytest.raises(InvalidConfigError):
        make()


def test_random_fault_is_seeded_and_covers_every_kind() -> None:
    """The same seed gives the same faults; 300 draws give every kind, counts within
    0..max_bytes (both ends reached) and latencies within 0..max_latency."""
    first = [random_fault(random.Random(5), max_bytes=4) for _ in range(3)]
    rng_a, rng_b = random.Random(7), random.Random(7)
    draws = [random_fault(rng_a, max_bytes=4, max_latency=0.5) for _ in range(300)]
    assert draws == [random_fault(rng_b, max_bytes=4, max_latency=0.5) for _ in range(300)]
    assert first[0] == first[1] == first[2]
    assert {type(fault) for fault in draws} == {
        Pass, CutAfter, ResetAfter, StallAfter, Delay, Refuse
    }
    inner = [fault.then if isinstance(fault, Delay) else fault for fault in draws]
    counts = {fault.after_bytes for fault in inner if hasattr(fault, "after_bytes")}
    assert counts == {0, 1, 2, 3, 4}
    latencies = [fault.latency for fault in draws if isinstance(fault, Delay)]
    assert all(0 <= latency <= 0.5 for latency in latencies)
    assert {type(fault.then) for fault in draws if isinstance(fault, Delay)} == {
        Pass, CutAfter, ResetAfter, StallAfter
    }


def test_randomized_fault_run() -> None:
    """A seeded run of random faults: every client sees a prefix of the stream, ended the way
    its fault says, and the counters add up."""
    rng = random.Random(2024)
    faults = [random_fault(rng, max_bytes=len(PAYLOAD), max_latency=0.02) for _ in range(12)]

    def expected(fault: object) -> tuple[bytes, str]:
        inner = fault.then if isinstance(fault, Delay) else fault
        if isinstance(inner, Refuse):
            return b"", "reset"
        if isinstance(inner, Pass):
            return PAYLOAD, "open"
        assert isinstance(inner, (CutAfter, ResetAfter, StallAfter))
        end = {CutAfter: "eof", ResetAfter: "reset", StallAfter: "open"}[type(inner)]
        return PAYLOAD[: inner.after_bytes], end

    async def main() -> None:
        async with Upstream(sends(PAYLOAD)) as upstream, FaultProxy(
            upstream.address, plan=faults
        ) as proxy:
            for fault in faults:
                sock = await connect(proxy.address)
                assert await read_to_end(sock, 0.15) == expected(fault), fault
                sock.close()
            stats = proxy.stats
            kinds = [fault.then if isinstance(fault, Delay) else fault for fault in faults]
            assert stats.accepted == len(faults)
            assert stats.refusals == sum(isinstance(fault, Refuse) for fault in faults)
            assert stats.delays == sum(isinstance(fault, Delay) for fault in faults)
            assert stats.cuts == sum(isinstance(kind, CutAfter) for kind in kinds)
            assert stats.resets == sum(isinstance(kind, ResetAfter) for kind in kinds)
            assert stats.stalls == sum(isinstance(kind, StallAfter) for kind in kinds)
            assert {type(fault) for fault in faults} >= {CutAfter, ResetAfter, Refuse}

    run(main)


def test_stats_snapshot() -> None:
    """stats is a frozen snapshot: later traffic does not change one already taken."""

    async def main() -> None:
        async with Upstream(sends(PAYLOAD)) as upstream, FaultProxy(
            upstream.address
        ) as proxy:
            before = proxy.stats
            sock = await connect(proxy.address)
            await read_exactly(sock, len(PAYLOAD))
            sock.close()
            assert before == ProxyStats()
            assert proxy.stats.bytes_downstream == len(PAYLOAD)

    run(main)


# --- the docs page ----------------------------------------------------------------------------

DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "proxy.rst"


def test_docs_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/proxy.rst's python code blocks run as written (with the proxy's names importable
    from sse_core.testing, where the package exports them) and check what they claim."""
    for name in _proxy.__all__:
        monkeypatch.setattr(sse_core.testing, name, getattr(_proxy, name), raising=False)
    text = DOCS_PAGE.read_text(encoding="utf-8")
    blocks = re.findall(r"^\.\. code-block:: python\n\n((?:(?: {3,}.*)?\n)+)", text, re.M)
    assert blocks
    namespace: dict[str, object] = {"__name__": "docs_proxy"}
    for block in blocks:
        exec(compile(textwrap.dedent(block), str(DOCS_PAGE), "exec"), namespace)
    entry = re.compile(r"^\.\. (?:auto\w+|py:data):: sse_core\.testing\.(\w+)", re.M)
    documented = set(entry.findall(text))
    assert documented == set(_proxy.__all__)
