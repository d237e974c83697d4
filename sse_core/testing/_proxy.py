"""An in-process TCP proxy that injects network faults into loopback tests (floor 4).

:class:`FaultProxy` listens on a loopback port and relays bytes between each client it
accepts and an upstream server. It knows nothing of HTTP or SSE. Every accepted connection
takes the next fault of the proxy's plan (a FIFO; :class:`Pass` once it is empty): it may be
cut after exactly N bytes toward the client (a clean FIN), reset after N bytes (an RST),
stalled after N bytes (both sockets stay open, nothing moves), delayed (every chunk toward
the client arrives later, at full throughput), or refused outright. Faults can also hit the
connections already open, at once (:meth:`FaultProxy.cut_all` and friends), and the upstream
can be moved at any time, as a server restarting on another port would.

Everything is bounded: each direction reads at most ``chunk_size`` bytes at a time, its
stream reader pauses the socket past ``max_buffer``, writes toward the client wait until the
kernel took every byte, and the delay queue holds at most ``max_delayed_chunks`` chunks; a
client that stops reading stops the upstream server's writes, as a real network would.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import math
import socket
import struct
import sys
from collections import deque
from collections.abc import Iterable
from typing import NoReturn, TypeAlias

import attrs

from .._errors import InvalidConfigError, LocalProtocolError
from .._types import RandomSource

if sys.platform == "linux":
    import fcntl
    import termios

__all__ = [
    "CutAfter",
    "Delay",
    "FaultProxy",
    "Pass",
    "ProxyFault",
    "ProxyStats",
    "Refuse",
    "ResetAfter",
    "StallAfter",
    "random_fault",
]


def _assert_never(value: NoReturn) -> NoReturn:
    # typing.assert_never is 3.11+; the package supports 3.10.
    raise AssertionError(f"unhandled value: {value!r}")  # pragma: no cover


def _check_count(name: str, value: object, minimum: int = 0) -> None:
    if type(value) is not int or value < minimum:
        raise InvalidConfigError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_duration(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidConfigError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_address(name: str, value: object) -> tuple[str, int]:
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not isinstance(value[0], str)
        or type(value[1]) is not int
        or not 1 <= value[1] <= 65535
    ):
        raise InvalidConfigError(f"{name} must be a (host, port) tuple with port 1-65535, "
                                 f"got {value!r}")
    return value


# --- faults -----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Pass:
    """Relay every byte both ways, untouched (what a connection gets when the plan is empty)."""


@attrs.frozen(kw_only=True)
class CutAfter:
    """Relay exactly ``after_bytes`` bytes toward the client, then close both sides cleanly.

    The client reads those bytes, then end of stream (a FIN); the count may end inside a
    line or between the bytes of one UTF-8 character. The upstream side is closed too (it may
    see a reset instead of a FIN if it sent bytes the proxy never read). If the upstream ends
    its stream first, the client sees that end and the cut never happens.

    Attributes:
        after_bytes: Bytes relayed toward the client before the cut (0: at once).
    """

    after_bytes: int

    def __attrs_post_init__(self) -> None:
        _check_count("after_bytes", self.after_bytes)


@attrs.frozen(kw_only=True)
class ResetAfter:
    """Relay exactly ``after_bytes`` bytes toward the client, then abort with a TCP reset.

    The client reads those bytes (Linux keeps them readable after the reset), then gets
    :class:`ConnectionResetError`. Before the reset the proxy waits until the client's
    kernel has acknowledged every byte (at most the proxy's ``flush_timeout``: a client that
    stopped reading loses what did not fit its receive buffer), then sets ``SO_LINGER`` to
    ``(1, 0)`` on the client-facing socket and aborts it.

    Attributes:
        after_bytes: Bytes relayed toward the client before the reset (0: at once).
    """

    after_bytes: int

    def __attrs_post_init__(self) -> None:
        _check_count("after_bytes", self.after_bytes)


@attrs.frozen(kw_only=True)
class StallAfter:
    """Relay exactly ``after_bytes`` bytes toward the client, then stop forwarding both ways.

    Both sockets stay open and nothing more moves, in either direction, until
    :meth:`FaultProxy.release` (the relay then resumes, losing nothing) or
    :meth:`FaultProxy.close`. Only a client's read timeout can notice.

    Attributes:
        after_bytes: Bytes relayed toward the client before the stall (0: at once).
    """

    after_bytes: int

    def __attrs_post_init__(self) -> None:
        _check_count("after_bytes", self.after_bytes)


@attrs.frozen(kw_only=True)
class Delay:
    """Every chunk toward the client arrives ``latency`` seconds after the proxy read it.

    Throughput is kept: chunks wait in a bounded queue drained by a second task, so the
    delay is added once per chunk, not once per chunk in turn. ``then`` combines the delay
    with a byte-counting fault (counted where the proxy reads, applied in order after the
    delayed bytes). Bytes toward the upstream are not delayed.

    Attributes:
        latency: Seconds added to every chunk toward the client.
        then: What else happens to the connection: :class:`Pass`, :class:`CutAfter`,
            :class:`ResetAfter` or :class:`StallAfter`.
    """

    latency: float
    then: Pass | CutAfter | ResetAfter | StallAfter = Pass()

    def __attrs_post_init__(self) -> None:
        _check_duration("latency", self.latency)
        if not isinstance(self.then, (Pass, CutAfter, ResetAfter, StallAfter)):
            raise InvalidConfigError(
                f"then must be Pass, CutAfter, ResetAfter or StallAfter, got {self.then!r}"
            )


@attrs.frozen(kw_only=True)
class Refuse:
    """Accept the connection, then reset it at once without contacting the upstream.

    The client's connect succeeds and its first read (or a later write) fails with
    :class:`ConnectionResetError`, as when a server is down behind a load balancer.
    """


#: Any fault a :class:`FaultProxy` connection can take.
ProxyFault: TypeAlias = Pass | CutAfter | ResetAfter | StallAfter | Delay | Refuse


def random_fault(rng: RandomSource, *, max_bytes: int, max_latency: float = 0.05) -> ProxyFault:
    """Draw one fault, each of the six kinds equally likely, from ``rng`` alone.

    The same ``rng`` state gives the same fault, so a seeded ``random.Random`` replays a
    randomized fault run exactly.

    Args:
        rng: Where randomness comes from (``random.Random(seed)`` in tests).
        max_bytes: The largest byte count of a cut, reset or stall (counts are drawn from
            ``0`` to ``max_bytes`` inclusive).
        max_latency: The largest latency of a :class:`Delay` (drawn uniformly from ``0``).

    Returns:
        A :class:`Pass`, :class:`CutAfter`, :class:`ResetAfter`, :class:`StallAfter`,
        :class:`Delay` (itself combined with a random pass, cut, reset or stall) or
        :class:`Refuse`.

    Raises:
        InvalidConfigError: ``max_bytes`` is not an int ``>= 0`` or ``max_latency`` is not a
            finite number ``>= 0``.
    """
    _check_count("max_bytes", max_bytes)
    _check_duration("max_latency", max_latency)

    def below(count: int) -> int:
        return min(int(rng.random() * count), count - 1)

    def counted(kind: int) -> Pass | CutAfter | ResetAfter | StallAfter:
        if kind == 0:
            return Pass()
        after_bytes = below(max_bytes + 1)
        if kind == 1:
            return CutAfter(after_bytes=after_bytes)
        if kind == 2:
            return ResetAfter(after_bytes=after_bytes)
        return StallAfter(after_bytes=after_bytes)

    kind = below(6)
    if kind < 4:
        return counted(kind)
    if kind == 4:
        latency = rng.uniform(0.0, max_latency)
        return Delay(latency=latency, then=counted(below(4)))
    return Refuse()


# --- counters ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ProxyStats:
    """What a :class:`FaultProxy` has done so far (a snapshot: :attr:`FaultProxy.stats`).

    Attributes:
        accepted: Connections accepted (refused ones included).
        open: Connections open now (being set up or relayed).
        bytes_downstream: Bytes relayed from the upstream to clients.
        bytes_upstream: Bytes relayed from clients to the upstream.
        cuts: Connections cut (planned :class:`CutAfter` or :meth:`FaultProxy.cut_all`).
        resets: Connections reset (planned :class:`ResetAfter` or
            :meth:`FaultProxy.reset_all`).
        stalls: Stalls started (planned :class:`StallAfter` or :meth:`FaultProxy.stall_all`).
        delays: Connections relayed with a :class:`Delay`.
        refusals: Connections refused (:class:`Refuse`).
        upstream_failures: Connections reset because the upstream could not be reached.
    """

    accepted: int = 0
    open: int = 0
    bytes_downstream: int = 0
    bytes_upstream: int = 0
    cuts: int = 0
    resets: int = 0
    stalls: int = 0
    delays: int = 0
    refusals: int = 0
    upstream_failures: int = 0

    @property
    def faults_applied(self) -> int:
        """Cuts, resets, stalls, delays and refusals together."""
        return self.cuts + self.resets + self.stalls + self.delays + self.refusals


@attrs.define
class _Tally:
    accepted: int = 0
    bytes_downstream: int = 0
    bytes_upstream: int = 0
    cuts: int = 0
    resets: int = 0
    stalls: int = 0
    delays: int = 0
    refusals: int = 0
    upstream_failures: int = 0


# --- one relayed connection -------------------------------------------------------------------


class _Mark(enum.Enum):
    """What the downstream queue carries besides bytes."""

    EOF = "eof"
    CUT = "cut"
    RESET = "reset"
    STALL = "stall"


class _End(enum.Enum):
    """Why a connection ends, which decides how its sockets close."""

    CUT = "cut"  # FIN both sides
    RESET = "reset"  # RST to the client
    ERROR = "error"  # a socket failed (or the upstream is unreachable): RST to the client
    DONE = "done"  # both directions reached end of stream
    CLOSE = "close"  # the proxy closes


_LINGER_RESET = struct.pack("ii", 1, 0)
#: How often a planned reset checks whether the client has taken every byte.
_FLUSH_POLL_INTERVAL = 0.002


def _unacknowledged(sock: socket.socket) -> int:
    """Bytes queued on ``sock`` that the peer has not acknowledged (0 where unknown)."""
    if sys.platform != "linux":
        return 0
    try:
        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")  # SIOCOUTQ
    except OSError:  # closed meanwhile
        return 0
    count: int = struct.unpack("i", queued)[0]
    return count


def _arm_reset(sock: socket.socket) -> None:
    """Make the next close of ``sock`` send an RST instead of a FIN."""
    with contextlib.suppress(OSError):  # already closed by its transport
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)


class _Connection:
    """One accepted client, relayed to the upstream under one fault."""

    def __init__(
        self, proxy: FaultProxy, sock: socket.socket, fault: ProxyFault, name: str
    ) -> None:
        self.name = name
        self._proxy = proxy
        self._sock = sock
        self._fault = fault
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._reason: _End | None = None
        self._ended = asyncio.Event()
        self._open_directions = 2
        self.is_relaying = False

    # -- control (any task) --

    def finish(self, reason: _End) -> bool:
        """End the connection for ``reason``; False if it was already ending."""
        if self._reason is not None:
            return False
        self._reason = reason
        self._ended.set()
        if reason is _End.CUT:
            self._proxy._tally.cuts += 1
        elif reason is _End.RESET:
            self._proxy._tally.resets += 1
        return True

    def stall(self) -> bool:
        """Stop forwarding both ways; False if already stalled or ending."""
        if not self._flowing.is_set() or self._reason is not None:
            return False
        self._flowing.clear()
        self._proxy._tally.stalls += 1
        return True

    def release(self) -> bool:
        """Resume forwarding; False if it was not stalled."""
        if self._flowing.is_set():
            return False
        self._flowing.set()
        return True

    def discard(self) -> None:
        """Close the accepted socket (its transport may have closed it already; a task
        cancelled before it ran never saw it)."""
        self._sock.close()

    # -- the relay --

    async def run(self) -> None:
        proxy = self._proxy
        if isinstance(self._fault, Refuse):
            proxy._tally.refusals += 1
            _arm_reset(self._sock)
            self._sock.close()
            return
        client: asyncio.StreamWriter | None = None
        upstream: asyncio.StreamWriter | None = None
        pumps: list[asyncio.Task[None]] = []
        try:
            client_reader, client = await asyncio.open_connection(
                sock=self._sock, limit=proxy._max_buffer
            )
            # Wait for the kernel to take every byte before counting it or acting on a mark.
            client.transport.set_write_buffer_limits(high=0)
            try:
                upstream_reader, upstream = await asyncio.open_connection(
                    *proxy.upstream, limit=proxy._max_buffer
                )
            except OSError:
                proxy._tally.upstream_failures += 1
                self.finish(_End.ERROR)
                return
            fault = self._fault
            latency = 0.0
            if isinstance(fault, Delay):
                proxy._tally.delays += 1
                latency, fault = fault.latency, fault.then
            budget: int | None
            match fault:
                case Pass():
                    budget, mark = None, _Mark.EOF
                case CutAfter(after_bytes=budget):
                    mark = _Mark.CUT
                case ResetAfter(after_bytes=budget):
                    mark = _Mark.RESET
                case StallAfter(after_bytes=budget):
                    mark = _Mark.STALL
                case _:
                    _assert_never(fault)
            queue: asyncio.Queue[tuple[float, bytes | _Mark]] = asyncio.Queue(
                maxsize=proxy._max_delayed_chunks if latency else 1
            )
            loop = asyncio.get_running_loop()
            name = self.name
            pumps = [
                loop.create_task(
                    self._read_downstream(upstream_reader, queue, budget, mark, latency),
                    name=f"{name} read downstream",
                ),
                loop.create_task(
                    self._write_downstream(client, queue), name=f"{name} write downstream"
                ),
                loop.create_task(
                    self._pump_upstream(client_reader, upstream), name=f"{name} upstream"
                ),
            ]
            for pump in pumps:
                pump.add_done_callback(self._pump_done)
            self.is_relaying = True
            await self._ended.wait()
        finally:
            self.is_relaying = False
            # Everything that needs no waiting first, so a second cancellation loses nothing.
            for pump in pumps:
                pump.cancel()
            reason = self._reason or _End.CLOSE
            if reason is _End.RESET or reason is _End.ERROR:
                _arm_reset(self._sock)
            writers = [writer for writer in (client, upstream) if writer is not None]
            for writer in writers:
                writer.transport.abort()
            if client is None:
                self._sock.close()
            if pumps:
                await asyncio.wait(pumps)
            for writer in writers:
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    def _pump_done(self, pump: asyncio.Task[None]) -> None:
        if pump.cancelled():
            return
        error = pump.exception()
        if error is not None:  # a bug: fail loudly from FaultProxy.close()
            self._proxy._failures.append(error)
            self.finish(_End.ERROR)

    def _direction_done(self) -> None:
        self._open_directions -= 1
        if self._open_directions == 0:
            self.finish(_End.DONE)

    async def _read_downstream(
        self,
        reader: asyncio.StreamReader,
        queue: asyncio.Queue[tuple[float, bytes | _Mark]],
        budget: int | None,
        mark: _Mark,
        latency: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        chunk_size = self._proxy._chunk_size
        try:
            while True:
                if budget == 0:
                    await queue.put((loop.time() + latency, mark))
                    if mark is not _Mark.STALL:
                        return
                    budget = None  # after a release, relay everything
                    continue
                data = await reader.read(chunk_size if budget is None else min(chunk_size,
                                                                                 budget))
                due = loop.time() + latency
                if not data:
                    await queue.put((due, _Mark.EOF))
                    return
                if budget is not None:
                    budget -= len(data)
                await queue.put((due, data))
        except OSError:
            self.finish(_End.ERROR)

    async def _write_downstream(
        self,
        writer: asyncio.StreamWriter,
        queue: asyncio.Queue[tuple[float, bytes | _Mark]],
    ) -> None:
        loop = asyncio.get_running_loop()
        tally = self._proxy._tally
        try:
            while True:
                due, item = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._flowing.wait()
                if isinstance(item, bytes):
                    writer.write(item)
                    await writer.drain()
                    tally.bytes_downstream += len(item)
                    continue
                match item:
                    case _Mark.EOF:
                        writer.write_eof()
                        self._direction_done()
                        return
                    case _Mark.STALL:
                        self.stall()
                    case _Mark.CUT:
                        self.finish(_End.CUT)
                        return
                    case _Mark.RESET:
                        await self._flushed()
                        self.finish(_End.RESET)
                        return
                    case _:
                        _assert_never(item)
        except OSError:
            self.finish(_End.ERROR)

    async def _flushed(self) -> None:
        """Wait until the client's kernel acknowledged every byte relayed, so that a reset
        loses none of them (a client that has stopped reading gets ``flush_timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._proxy._flush_timeout
        while _unacknowledged(self._sock) and loop.time() < deadline:
            await asyncio.sleep(_FLUSH_POLL_INTERVAL)  # the kernel offers no event for it

    async def _pump_upstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        tally = self._proxy._tally
        chunk_size = self._proxy._chunk_size
        try:
            while True:
                data = await reader.read(chunk_size)
                await self._flowing.wait()
                if not data:
                    writer.write_eof()
                    self._direction_done()
                    return
                writer.write(data)
                await writer.drain()
                tally.bytes_upstream += len(data)
        except OSError:
            self.finish(_End.ERROR)


# --- the proxy --------------------------------------------------------------------------------


class _Phase(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class FaultProxy:
    """A loopback TCP proxy that relays bytes and injects faults, one plan entry per connection.

    Use it as an async context manager (or call :meth:`start` and :meth:`close`)::

        async with FaultProxy(("127.0.0.1", server_port)) as proxy:
            proxy.schedule(CutAfter(after_bytes=10), ResetAfter(after_bytes=0))
            host, port = proxy.address  # connect the client under test here

    Each accepted connection takes the next fault of the plan, or ``default`` when the plan
    is empty. Counts are available as :attr:`stats`.

    Args:
        upstream: ``(host, port)`` of the server to relay to; settable later.
        host: Address to listen on.
        port: Port to listen on (0: any free port; read :attr:`address` once started).
        plan: The first faults, one per connection in accept order.
        default: The fault of connections that find the plan empty.
        chunk_size: The most bytes read from a socket at once (and the size of a delayed
            chunk).
        max_buffer: Bytes a connection's stream reader holds before it pauses its socket
            (each direction holds at most about twice this).
        max_delayed_chunks: Chunks a connection under :class:`Delay` may hold in flight; the
            upstream is paused beyond that (``latency`` times the rate, in chunks, keeps full
            throughput).
        flush_timeout: How long a planned :class:`ResetAfter` waits for the client to take
            the bytes already relayed before it resets (Linux; elsewhere it does not wait).
        backlog: The listening socket's backlog.

    Raises:
        InvalidConfigError: An argument is out of range.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        plan: Iterable[ProxyFault] = (),
        default: ProxyFault = Pass(),
        chunk_size: int = 65536,
        max_buffer: int = 65536,
        max_delayed_chunks: int = 64,
        flush_timeout: float = 2.0,
        backlog: int = 128,
    ) -> None:
        self._upstream = _check_address("upstream", upstream)
        if not isinstance(host, str):
            raise InvalidConfigError(f"host must be a str, got {host!r}")
        if type(port) is not int or not 0 <= port <= 65535:
            raise InvalidConfigError(f"port must be an int from 0 to 65535, got {port!r}")
        _check_count("chunk_size", chunk_size, 1)
        _check_count("max_buffer", max_buffer, 1)
        _check_count("max_delayed_chunks", max_delayed_chunks, 1)
        _check_duration("flush_timeout", flush_timeout)
        _check_count("backlog", backlog, 1)
        self._plan: deque[ProxyFault] = deque()
        self.schedule(*plan)
        self.default = default
        self._host = host
        self._port = port
        self._chunk_size = chunk_size
        self._max_buffer = max_buffer
        self._max_delayed_chunks = max_delayed_chunks
        self._flush_timeout = flush_timeout
        self._backlog = backlog
        self._phase = _Phase.NEW
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._accepted_changed: asyncio.Condition | None = None
        self._connections: dict[_Connection, asyncio.Task[None]] = {}
        self._tally = _Tally()
        self._failures: list[BaseException] = []

    # -- configuration --

    @property
    def upstream(self) -> tuple[str, int]:
        """``(host, port)`` that new connections are relayed to.

        Setting it moves only connections accepted afterwards (a server restarting on another
        port); open ones stay with the old upstream.
        """
        return self._upstream

    @upstream.setter
    def upstream(self, value: tuple[str, int]) -> None:
        self._upstream = _check_address("upstream", value)

    @property
    def default(self) -> ProxyFault:
        """The fault of connections that find the plan empty (settable)."""
        return self._default

    @default.setter
    def default(self, fault: ProxyFault) -> None:
        _check_fault(fault)
        self._default = fault

    def schedule(self, *faults: ProxyFault) -> None:
        """Append faults to the plan: the next connections take them in order.

        Args:
            *faults: One fault per future connection.

        Raises:
            InvalidConfigError: An argument is not a fault.
        """
        for fault in faults:
            _check_fault(fault)
        self._plan.extend(faults)

    @property
    def pending(self) -> tuple[ProxyFault, ...]:
        """The faults of the plan that no connection has taken yet, in order."""
        return tuple(self._plan)

    # -- lifecycle --

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the proxy listens on.

        Raises:
            LocalProtocolError: The proxy is not running.
        """
        if self._listener is None or self._phase is not _Phase.RUNNING:
            raise LocalProtocolError(f"the proxy has no address: it is {self._phase.value}")
        host, port = self._listener.getsockname()[:2]
        return host, port

    async def start(self) -> None:
        """Listen and start accepting connections.

        Raises:
            LocalProtocolError: The proxy was started before.
            OSError: The address cannot be bound.
        """
        if self._phase is not _Phase.NEW:
            raise LocalProtocolError(f"start() on a proxy that is {self._phase.value}")
        listener = socket.create_server((self._host, self._port), backlog=self._backlog)
        listener.setblocking(False)
        self._listener = listener
        self._accepted_changed = asyncio.Condition()
        self._phase = _Phase.RUNNING
        self._accepting = asyncio.get_running_loop().create_task(
            self._accept_loop(listener), name="FaultProxy accept"
        )

    async def close(self) -> None:
        """Stop listening, close every relayed connection and wait for all the proxy's tasks.

        Clients see end of stream. Calling it again does nothing.

        Raises:
            Exception: The first unexpected error of a relay task (a bug in the proxy), after
                everything is closed.
        """
        if self._phase is _Phase.CLOSED:
            return
        was_running = self._phase is _Phase.RUNNING
        self._phase = _Phase.CLOSED
        if not was_running:
            return
        if self._accepting is not None:
            self._accepting.cancel()
            await asyncio.wait([self._accepting])
            self._note_failure(self._accepting)
        if self._listener is not None:
            self._listener.close()
        tasks = list(self._connections.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self._accepted_changed is not None:
            async with self._accepted_changed:
                self._accepted_changed.notify_all()
        if self._failures:
            raise self._failures[0]

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        assert self._accepted_changed is not None
        while True:
            try:
                sock, _ = await loop.sock_accept(listener)
            except ConnectionAbortedError:  # the client gave up before we accepted
                continue
            fault = self._plan.popleft() if self._plan else self._default
            self._tally.accepted += 1
            connection = _Connection(
                self, sock, fault, f"FaultProxy connection {self._tally.accepted}"
            )
            task = loop.create_task(connection.run(), name=connection.name)
            self._connections[connection] = task
            task.add_done_callback(functools.partial(self._forget, connection))
            async with self._accepted_changed:
                self._accepted_changed.notify_all()

    def _forget(self, connection: _Connection, _: object) -> None:
        connection.discard()
        self._note_failure(self._connections.pop(connection))

    def _note_failure(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self._failures.append(error)

    async def wait_for_connections(self, count: int) -> None:
        """Wait until at least ``count`` connections have been accepted since the start.

        Args:
            count: The number of accepted connections (refused ones included) to wait for.

        Raises:
            InvalidConfigError: ``count`` is not an int ``>= 0``.
            LocalProtocolError: The proxy is not running, or it closed before ``count``
                connections came.
        """
        _check_count("count", count)
        condition = self._accepted_changed
        if condition is None or self._phase is not _Phase.RUNNING:
            raise LocalProtocolError(f"wait_for_connections() on a proxy that is "
                                     f"{self._phase.value}")
        async with condition:
            await condition.wait_for(
                lambda: self._tally.accepted >= count or self._phase is _Phase.CLOSED
            )
        if self._tally.accepted < count:
            raise LocalProtocolError(f"the proxy closed after {self._tally.accepted} "
                                     f"connections, before {count}")

    # -- faults on open connections --

    def _relaying(self) -> list[tuple[_Connection, asyncio.Task[None]]]:
        return [(conn, task) for conn, task in self._connections.items() if conn.is_relaying]

    async def cut_all(self) -> int:
        """Cut every relayed connection now (FIN both sides) and wait until they are closed.

        Bytes the proxy read but did not yet write (a delayed connection's queue) are lost.
        Connections still being set up are not affected.

        Returns:
            How many connections were cut.
        """
        return await self._end_all(_End.CUT)

    async def reset_all(self) -> int:
        """Reset every relayed connection now (RST to the client) and wait until they are
        closed.

        Unlike a planned :class:`ResetAfter`, it does not wait for the client to take the
        bytes in flight: those still in the kernel's queues are lost, as on a real network.

        Returns:
            How many connections were reset.
        """
        return await self._end_all(_End.RESET)

    async def _end_all(self, reason: _End) -> int:
        ended = [task for conn, task in self._relaying() if conn.finish(reason)]
        if ended:
            await asyncio.wait(ended)
        return len(ended)

    def stall_all(self) -> int:
        """Stop forwarding on every relayed connection, both ways, keeping the sockets open.

        A chunk already handed to the kernel still arrives; nothing after it does until
        :meth:`release`. Connections accepted later are not stalled.

        Returns:
            How many connections were stalled (already stalled ones are not counted).
        """
        return sum(conn.stall() for conn, _ in self._relaying())

    def release(self) -> int:
        """Resume forwarding on every stalled connection (a planned stall or :meth:`stall_all`).

        Returns:
            How many connections were released.
        """
        return sum(conn.release() for conn, _ in self._relaying())

    # -- counters --

    @property
    def stats(self) -> ProxyStats:
        """A snapshot of the proxy's counters."""
        return ProxyStats(open=len(self._connections), **attrs.asdict(self._tally))


def _check_fault(fault: object) -> None:
    if not isinstance(fault, (Pass, CutAfter, ResetAfter, StallAfter, Delay, Refuse)):
        raise InvalidConfigError(f"expected a proxy fault (Pass, CutAfter, ResetAfter, "
                                 f"StallAfter, Delay, Refuse), got {fault!r}")
