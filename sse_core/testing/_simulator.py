"""The deterministic simulator: sessions, a publisher and a faulty network on a virtual clock
(floor 4).

:func:`simulate` runs one :class:`Scenario`: a :class:`~sse_core.ClientSession`, one
:class:`~sse_core.ServerSession` per connection sharing a :class:`~sse_core.state.ReplayLog`, a
publisher that appends events at chosen virtual times, and a network that delivers bytes in
chunks and suffers the scenario's faults. Nothing reads a clock or draws unseeded randomness:
the same scenario gives the same :class:`SimulationResult`, byte for byte.

With ``Scenario(transport="auto")`` the client may fall back to long-polling: requests for
its ``long_poll_url`` go to a :class:`~sse_core.LongPollSession` on the same log, whose
answers cross the same faulty network (a buffering proxy holds a poll's answer only until the
answer ends, at once: polling gets through where streaming does not).

At the end it checks the resumption invariant (:func:`check_record`): every published event
reached the application exactly once and in order, or falls inside a gap the client reported.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Collection, Sequence
from typing import Literal, cast
from urllib.parse import urlsplit

import attrs

from .._actions import (
    Action,
    ClientState,
    Connect,
    Deliver,
    DeliverBatch,
    Disconnect,
    ReportFailure,
    ReportGap,
    ReportStale,
    ReportStatus,
    ReportTransport,
    Request,
    Send,
    SendHead,
    Transport,
)
from .._backoff import BackoffConfig, Jitter
from .._batching import BatchConfig
from .._client import ClientConfig, ClientSession
from .._dedup import DedupConfig
from .._errors import InvalidConfigError
from .._events import Event
from .._longpoll import LongPollConfig, LongPollSession
from .._replay import ReplayConfig, ReplayLog
from .._server import ServerConfig, ServerSession

__all__ = [
    "BufferingProxy",
    "Cut",
    "Deploy",
    "Fault",
    "Handoff",
    "Offline",
    "Partition",
    "Recorded",
    "Reset",
    "Restart",
    "Scenario",
    "SimulationResult",
    "SlowLink",
    "Stall",
    "check_record",
    "random_scenario",
    "simulate",
]


def _check_time(name: str, value: object, *, positive: bool = False) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        bound = "> 0" if positive else ">= 0"
        raise InvalidConfigError(f"{name} must be a finite number {bound}, got {value!r}")


def _check_int(name: str, value: object, minimum: int) -> None:
    if type(value) is not int or value < minimum:
        raise InvalidConfigError(f"{name} must be an int >= {minimum}, got {value!r}")


# --- faults -----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Cut:
    """The open connection breaks after ``after_bytes`` more body bytes reach the client.

    The cut falls wherever the count ends: inside a field name, between the bytes of one
    UTF-8 character, inside a gzip block.

    Attributes:
        at: When the cut is armed (no effect when no connection is open then).
        after_bytes: Body bytes still delivered before the break (0: at once).
        is_eof: The client sees a clean end of body (``on_eof``) rather than a network error
            (``on_connection_lost``).
    """

    at: float
    after_bytes: int = 0
    is_eof: bool = False

    def __attrs_post_init__(self) -> None:
        _check_time("at", self.at)
        _check_int("after_bytes", self.after_bytes, 0)


@attrs.frozen(kw_only=True)
class Reset:
    """The open connection is reset: bytes in flight are lost, the client gets
    ``on_connection_lost``.

    Attributes:
        at: When.
    """

    at: float

    def __attrs_post_init__(self) -> None:
        _check_time("at", self.at)


@attrs.frozen(kw_only=True)
class Stall:
    """The open connection goes silent for good but stays open (a dead peer, a dropped NAT
    entry): only the client's stall timeout can notice.

    Attributes:
        at: When.
    """

    at: float

    def __attrs_post_init__(self) -> None:
        _check_time("at", self.at)


@attrs.frozen(kw_only=True)
class Restart:
    """The server restarts: open streams end (gracefully), connections are refused for
    ``downtime`` seconds.

    Attributes:
        at: When it goes down.
        downtime: How long it stays down.
        is_log_kept: The replay log survives (it lives outside the process). When lost, the
            new log gets a new epoch: ids from before are unknown to it, so the client must
            be told of a gap.
    """

    at: float
    downtime: float = 1.0
    is_log_kept: bool = True

    def __attrs_post_init__(self) -> None:
        _check_time("at", self.at)
        _check_time("downtime", self.downtime)


@attrs.frozen(kw_only=True)
class Deploy:
    """A deploy behind a gateway: open streams end, and requests are answered with HTTP 503
    for ``duration`` seconds (the client must have 503 in ``retry_statuses``).

    Attributes:
        at: When the deploy starts.
        duration: How long requests get 503.
    """

    at: float
    duration: float = 5.0

    def __attrs_post_init__(self) -> None:
        _check_time("at", self.at)
        _check_time("duration", self.duration, positive=True)


@attrs.frozen(kw_only=True)
class Partition:
    """The network splits for ``duration`` seconds: open connections go silent (and stay so),
    new connections time out.

    Attributes:
        at: When.
        duration: How long.
    """

    at: float
    duration: float = 10.0

    def __attrs_post_init__(self) -> None:
        _check_time("at", self.at)
        _check_time("duration", self.duration, positive=True)


@attrs.frozen(kw_only=True)
class SlowLink:
    """For ``duration`` seconds, bytes sent travel in tiny chunks with a delay between them.

    With ``max_chunk=1`` and a ``delay`` long enough that a line takes longer than the
    client's stall timeout, it is a drip: bytes keep coming, complete lines do not, and the
    client replaces the connection.

    Attributes:
        at: When the link slows.
        duration: How long.
        max_chunk: The largest chunk, in bytes.
        delay: Seconds between two chunks.
    """

    at: float
    duration: float = 10.0
    max_chunk: int = 3
    delay: float = 0.05

    def __attrs_post_init__(self) -> None:
        _check_time("at", self.at)
        _check_time("duration", self.duration, positive=True)
        _check_int("max_chunk", self.max_chunk, 1)
        _check_time("delay", self.delay)


@attrs.frozen(kw_only=True)
class BufferingProxy:
    """Connections opened during the window pass a proxy that holds body bytes until
    ``threshold`` bytes have gathered (or the connection closes), for the connection's life.

    Attributes:
        at: Start of the window.
        duration: Length of the window.
        threshold: Bytes the proxy gathers before it passes them on.
    """

    at: float
    duration: float = 10.0
    threshold: int = 1024

    def __attrs_post_init__(self) -> None:
        _check_time("at", self.at)
        _check_time("duration", self.duration, positive=True)
        _check_int("threshold", self.threshold, 1)


@attrs.frozen(kw_only=True)
class Offline:
    """The device has no network for ``duration`` seconds: the open connection goes silent
    for good, new ones fail at once ("network unreachable"). With ``is_signalled`` the
    platform says so: the client gets ``on_offline`` at the start and ``on_online`` at the
    end (a browser's ``offline``/``online`` events).

    Attributes:
        at: When the network goes.
        duration: How long it stays away.
        is_signalled: Whether the client is told.
    """

    at: float
    duration: float = 10.0
    is_signalled: bool = True

    def __attrs_post_init__(self) -> None:
        _check_time("at", self.at)
        _check_time("duration", self.duration, positive=True)


@attrs.frozen(kw_only=True)
class Handoff:
    """The device moves to another network (Wi-Fi to cellular): the open connection goes
    silent for good, without any error (its packets go to an address the device no longer
    has). With ``is_signalled`` the client gets ``on_network_changed``; without it, only the
    stall timeout notices.

    Attributes:
        at: When.
        is_signalled: Whether the client is told.
    """

    at: float
    is_signalled: bool = True

    def __attrs_post_init__(self) -> None:
        _check_time("at", self.at)


#: Any fault a scenario can schedule.
Fault = (
    Cut | Reset | Stall | Restart | Deploy | Partition | SlowLink | BufferingProxy | Offline
    | Handoff
)


def _fault_end(fault: Fault) -> float:
    match fault:
        case Cut() | Reset() | Stall() | Handoff():
            return fault.at
        case Restart():
            return fault.at + fault.downtime
        case Deploy() | Partition() | SlowLink() | BufferingProxy() | Offline():
            return fault.at + fault.duration


# --- scenario and result ----------------------------------------------------------------------


_STREAM_URL = "https://sim.test/events"
_LONG_POLL_URL = "https://sim.test/poll"


def _default_client(scenario: Scenario) -> ClientConfig:
    config = ClientConfig(
        url=_STREAM_URL,
        retry_statuses=frozenset({502, 503}),
        stall_timeout=6.0,
        backoff=BackoffConfig(base_delay=0.5, max_delay=5.0, healthy_after=2.0),
    )
    if scenario.transport == "auto":
        # Quick to switch, quick to try streaming again.
        config = attrs.evolve(
            config, long_poll_url=_LONG_POLL_URL, first_byte_timeout=3.0, switch_after=2,
            retry_streaming_after=20.0, long_poll_timeout=5.0, min_poll_interval=0.5,
        )
    return config


def _default_server() -> ServerConfig:
    return ServerConfig(heartbeat_interval=2.0)


def _default_long_poll() -> LongPollConfig:
    return LongPollConfig(max_hold=10.0)


def _same_endpoint(url: str, endpoint: str) -> bool:
    """Whether ``url`` is ``endpoint`` with some query (scheme, host and path alike)."""
    a, b = urlsplit(url), urlsplit(endpoint)
    return (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)


@attrs.frozen(kw_only=True)
class Scenario:
    """One simulation run, fully determined.

    Attributes:
        seed: Seeds the client's random source and the network's chunking.
        publish_at: Virtual times at which the publisher appends one event each.
        data: The events' data, one per entry of :attr:`publish_at` (cycled when shorter;
            ``f"event {n}"`` when empty).
        faults: What goes wrong, and when.
        client: The client's configuration (keep ``max_attempts`` unset for the run to be
            able to finish; put 503 in ``retry_statuses`` when there are :class:`Deploy`
            faults).
        server: The server sessions' configuration.
        replay: The replay log's limits. Its ``epoch`` is suffixed with a restart counter.
        latency: One-way network delay in seconds.
        connect_timeout: How long a connection attempt into a :class:`Partition` takes to
            fail.
        settle_timeout: Virtual seconds allowed, after the last publish and the last fault,
            for the client to catch up. Past it the run stops with ``completed=False``.
        max_steps: Bound on processed simulation steps (a runaway guard).
        transport: ``"stream"``: the client only streams (its ``long_poll_url`` must be
            unset). ``"auto"``: it may fall back to long-polling (``long_poll_url`` must be
            set; the default client then has it, with a 3 s ``first_byte_timeout``,
            ``switch_after=2``, ``retry_streaming_after=20`` s and 5 s polls). Requests for
            that URL are answered by :class:`~sse_core.LongPollSession` objects.
        long_poll: The long-poll sessions' configuration (with ``"auto"``).
    """

    seed: int = 0
    publish_at: tuple[float, ...] = ()
    data: tuple[str, ...] = ()
    faults: tuple[Fault, ...] = ()
    transport: Literal["stream", "auto"] = "stream"
    client: ClientConfig = attrs.field(
        default=attrs.Factory(_default_client, takes_self=True)
    )
    server: ServerConfig = attrs.field(factory=_default_server)
    long_poll: LongPollConfig = attrs.field(factory=_default_long_poll)
    replay: ReplayConfig = attrs.field(factory=ReplayConfig)
    latency: float = 0.02
    connect_timeout: float = 2.0
    settle_timeout: float = 300.0
    max_steps: int = 1_000_000

    def __attrs_post_init__(self) -> None:
        _check_int("seed", self.seed, -(2**63))
        for at in self.publish_at:
            _check_time("publish_at", at)
        if list(self.publish_at) != sorted(self.publish_at):
            raise InvalidConfigError("publish_at must be in increasing order")
        for text in self.data:
            if not isinstance(text, str):
                raise InvalidConfigError(f"data must be strs, got {text!r}")
        for fault in self.faults:
            if not isinstance(fault, Fault):
                raise InvalidConfigError(f"faults must be Fault records, got {fault!r}")
        _check_time("latency", self.latency)
        _check_time("connect_timeout", self.connect_timeout)
        _check_time("settle_timeout", self.settle_timeout, positive=True)
        _check_int("max_steps", self.max_steps, 1)
        if self.transport not in ("stream", "auto"):
            raise InvalidConfigError(
                f"transport must be 'stream' or 'auto', got {self.transport!r}"
            )
        if not isinstance(self.client, ClientConfig):
            raise InvalidConfigError(f"client must be a ClientConfig, got {self.client!r}")
        has_url = self.client.long_poll_url is not None
        if has_url != (self.transport == "auto"):
            raise InvalidConfigError(
                f"transport {self.transport!r} needs a client "
                + ("with a long_poll_url" if self.transport == "auto" else "without long_poll_url")
            )
        if has_url and _same_endpoint(self.client.url, cast("str", self.client.long_poll_url)):
            raise InvalidConfigError("the client's url and long_poll_url must differ")
        if not isinstance(self.long_poll, LongPollConfig):
            raise InvalidConfigError(
                f"long_poll must be a LongPollConfig, got {self.long_poll!r}"
            )

    @property
    def heal_at(self) -> float:
        """When publishing has stopped and every fault is over."""
        ends = [_fault_end(fault) for fault in self.faults]
        return max([0.0, *self.publish_at, *ends])

    def event_data(self, n: int) -> str:
        """The data of the ``n``-th published event."""
        if not self.data:
            return f"event {n}"
        return self.data[n % len(self.data)]


#: What the simulator records of the client's actions: what the application sees.
Recorded = Deliver | ReportGap | ReportTransport


@attrs.frozen(kw_only=True)
class SimulationResult:
    """What happened in one run.

    Attributes:
        seed: The scenario's seed.
        published: Events owed to this client: published from the moment it subscribed (its
            first request when it started with a ``last_event_id``, else the request whose
            position or first event first reached it).
        delivered: Events handed to the application.
        duplicates_suppressed: Replayed events the client dropped as duplicates.
        gaps: Gap reports the application received.
        missed: Published events not delivered, each explained by a gap report.
        reconnects: Successful reconnections after the first connection.
        connections: Connection attempts (every poll counts as one).
        virtual_duration: Virtual seconds simulated.
        completed: The client caught up (every event delivered or explained) after the
            network healed, within ``settle_timeout``.
        violation: What broke the invariant, or ``None``.
        published_ids: The ids counted in :attr:`published`, in order.
        record: What the application saw, in order: ``(now, action)`` pairs of every
            :class:`~sse_core.Deliver`, :class:`~sse_core.ReportGap` and
            :class:`~sse_core.ReportTransport` (the last do not count in the verdict).
        transport_switches: :class:`~sse_core.ReportTransport` actions: switches to
            long-polling and back to streaming.
        polls: Requests answered by a long-poll session (each poll the server took).
    """

    seed: int
    published: int
    delivered: int
    duplicates_suppressed: int
    gaps: int
    missed: int
    reconnects: int
    connections: int
    virtual_duration: float
    completed: bool
    violation: str | None
    published_ids: tuple[str, ...] = ()
    record: tuple[tuple[float, Recorded], ...] = ()
    transport_switches: int = 0
    polls: int = 0

    @property
    def is_ok(self) -> bool:
        """Completed without violation."""
        return self.completed and self.violation is None


# --- the invariant ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Verdict:
    violation: str | None
    missed: int
    is_caught_up: bool
    last_id: str = ""


def _judge(
    published: Sequence[tuple[str, str, float]],
    record: Sequence[tuple[float, Recorded]],
    initial_last_event_id: str = "",
    positions: Collection[str] | None = None,
) -> _Verdict:
    index = {event_id: k for k, (event_id, _, _) in enumerate(published)}
    expected = 0  # index of the next published event the application should see
    gap_at: float | None = None  # latest gap report since the last delivery
    last_id = initial_last_event_id
    missed = 0
    for now, entry in record:
        if isinstance(entry, ReportTransport):
            continue  # how events come does not matter, only which
        if isinstance(entry, ReportGap):
            # It must name where the client resumed from: the application's last event; or
            # a position the server gave (ReplayLog.position): before any delivery, the log's
            # start marker or the id of an event from before the client subscribed; after an
            # earlier gap since the last delivery, the id of an event that gap covered.
            # Never an earlier event, never anything else.
            # (A sequencer's gap names missing numbers, not a resume id: judged as resuming
            # from the application's last event.)
            name = last_id if entry.last_event_id is None else entry.last_event_id
            named = index.get(name)
            is_first_position = (
                not last_id and bool(name) and named is None
                and (positions is None or name in positions)
            )
            is_later_position = gap_at is not None and named is not None and named >= expected
            is_start_marker = name == "start" or name.endswith("-start")
            if (
                name != last_id
                and not is_start_marker
                and not is_first_position
                and not is_later_position
            ):
                return _Verdict(
                    violation=(
                        f"at {now:.3f}: gap report resumes from {entry.last_event_id!r} but "
                        f"the application's last event was {last_id!r}"
                    ),
                    missed=missed,
                    is_caught_up=False,
                )
            gap_at = now
            continue
        event = entry.event
        k = index.get(event.id) if event.id is not None else None
        problem = None
        if k is None:
            problem = f"delivered an event that was not published: {event!r}"
        elif k < expected:
            problem = f"delivered {event.id!r} again or out of order"
        elif published[k][1] != event.data:
            problem = f"data of {event.id!r} corrupted: {event.data!r} != {published[k][1]!r}"
        elif k > expected:
            lost = [p for p in published[expected:k]]
            unexplained = [i for i, _, at in lost if gap_at is None or at > gap_at]
            if unexplained:
                problem = (
                    f"silently lost {len(unexplained)} event(s) before {event.id!r}: "
                    f"{unexplained[:5]}{_NO_ID if not last_id else ''}"
                )
            missed += k - expected
        if problem is not None:
            return _Verdict(violation=f"at {now:.3f}: {problem}", missed=missed,
                            is_caught_up=False)
        assert k is not None
        expected = k + 1
        gap_at = None
        last_id = event.id or last_id
    tail = published[expected:]
    caught_up = not tail or (gap_at is not None and all(at <= gap_at for _, _, at in tail))
    if caught_up:
        missed += len(tail)
    return _Verdict(violation=None, missed=missed, is_caught_up=caught_up, last_id=last_id)


#: Appended to a loss report when the application had no event yet: the client had no
#: ``Last-Event-ID`` to resume from.
_NO_ID = " while the client had no event id to resume from"


def _not_caught_up(verdict: _Verdict, published: int) -> str:
    note = _NO_ID if not verdict.last_id else ""
    return (
        f"not caught up: events neither delivered nor reported as a gap "
        f"(of {published} published){note}"
    )


def check_record(
    published: Sequence[tuple[str, str, float]],
    record: Sequence[tuple[float, Recorded]],
    *,
    initial_last_event_id: str = "",
    positions: Collection[str] | None = None,
) -> str | None:
    """Check what an application saw against what was published.

    The invariant: the delivered ids are a subsequence of the published ids, in order and
    without repeats, with the published data; and every published event that was not
    delivered lies between the deliveries around a :class:`~sse_core.ReportGap`, was
    published before that report arrived, and the report names the last event the
    application had (so it is the gap the client really fell into). An undelivered tail is
    only accepted when a gap report after the last delivery covers it.

    Args:
        published: ``(id, data, published_at)`` of every event, in publishing order.
        record: ``(now, action)`` of every :class:`~sse_core.Deliver` and
            :class:`~sse_core.ReportGap` the application got, in order
            (:class:`~sse_core.ReportTransport` entries are allowed and ignored).
        initial_last_event_id: The id the client started from.
        positions: Every id the server could have given the client as its first position
            (the ids of events published before it subscribed); ``None``: any id that is
            not among ``published``. A gap report before the first delivery must name one of
            them (or a ``"<epoch>-start"`` marker).

    Returns:
        ``None`` when the record keeps the invariant, else a description of the first
        breach.
    """
    verdict = _judge(published, record, initial_last_event_id, positions)
    if verdict.violation is None and not verdict.is_caught_up:
        return _not_caught_up(verdict, len(published))
    return verdict.violation


# --- the network ------------------------------------------------------------------------------

_HEAD, _DATA, _EOF, _FAIL = range(4)
_PUBLISH, _FAULT, _FAULT_END, _ARRIVE, _REQUEST = range(5)


_ServerSide = ServerSession | LongPollSession


class _Connection:
    __slots__ = (
        "cut_is_eof",
        "cut_remaining",
        "has_head",
        "id",
        "in_flight",
        "is_open",
        "is_silent",
        "last_arrival",
        "proxy_buffer",
        "proxy_threshold",
        "request",
        "requested_index",
        "server",
    )

    def __init__(self, id: int, request: Request) -> None:
        self.id = id
        self.request = request
        self.server: _ServerSide | None = None
        self.is_open = True  # the client still uses it
        self.has_head = False  # the response head reached the client
        self.is_silent = False
        self.last_arrival = 0.0
        self.in_flight = 0
        self.cut_remaining: int | None = None
        self.cut_is_eof = False
        self.proxy_threshold: int | None = None
        self.proxy_buffer = bytearray()
        # How many events were published when a server session took the request.
        self.requested_index: int | None = None


#: Builds the client under test (a subclass of :class:`~sse_core.ClientSession`, or one that
#: wraps it) from the scenario's configuration and a seeded random source.
ClientFactory = Callable[[ClientConfig, random.Random], ClientSession]


def _default_factory(config: ClientConfig, rng: random.Random) -> ClientSession:
    return ClientSession(config, rng=rng)


class _Simulation:
    def __init__(self, scenario: Scenario, client_factory: ClientFactory) -> None:
        self.scenario = scenario
        self.rng = random.Random(f"network-{scenario.seed}")
        self.client = client_factory(scenario.client, random.Random(scenario.seed))
        self.now = 0.0
        self.heap: list[tuple[float, int, int, object]] = []
        self.seq = 0
        self.epochs = 0
        self.log = ReplayLog(self._replay_config())
        self.conn: _Connection | None = None
        self.conn_count = 0
        self.servers: list[_Connection] = []  # connections with a live server session
        self.published: list[tuple[str, str, float]] = []
        self.all_ids: set[str] = set()  # of every event published, owed or not
        # For a client that starts with an id: the first event owed to it, fixed when the
        # server takes its first request.
        self.resume_index: int | None = None
        # Since when events are owed to the client: a client that starts without an id is
        # subscribed once a position from the server reaches it (before, it cannot say where
        # it was, like a client that has not started yet).
        self.subscribed_index: int | None = None
        self.record: list[tuple[float, Recorded]] = []
        self.switches = 0
        self.polls = 0
        self.down_until = -math.inf
        self.deploy_until = -math.inf
        self.partition_until = -math.inf
        self.offline_until = -math.inf
        self.is_offline_told = False  # the client was told "offline" and not yet "online"
        self.slow: list[SlowLink] = []
        self.proxies: list[BufferingProxy] = []
        self.violation: str | None = None

    def _replay_config(self) -> ReplayConfig:
        base = self.scenario.replay
        return attrs.evolve(base, epoch=f"{base.epoch}e{self.epochs}")

    def push(self, at: float, kind: int, payload: object) -> None:
        heapq.heappush(self.heap, (at, self.seq, kind, payload))
        self.seq += 1

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> SimulationResult:
        scenario = self.scenario
        for n, at in enumerate(scenario.publish_at):
            self.push(at, _PUBLISH, n)
        for fault in scenario.faults:
            self.push(fault.at, _FAULT, fault)
            if _fault_end(fault) > fault.at:
                self.push(_fault_end(fault), _FAULT_END, fault)
        heal_at = scenario.heal_at
        cap = heal_at + scenario.settle_timeout
        while self.heap and self.heap[0][0] <= 0.0 and self.heap[0][2] == _FAULT:
            _, _, kind, payload = heapq.heappop(self.heap)  # faults at 0 meet the first request
            self.dispatch(kind, payload)
        self.client_actions(self.client.start(0.0))
        completed = False
        steps = 0
        while self.violation is None:
            steps += 1
            if steps > scenario.max_steps:
                self.violation = f"more than {scenario.max_steps} steps: runaway loop"
                break
            if self.now >= heal_at and self.is_caught_up():
                completed = True
                break
            heap_at = self.heap[0][0] if self.heap else math.inf
            client_at = self.client.next_deadline()
            client_at = math.inf if client_at is None else client_at
            server_at, server_conn = math.inf, None
            for conn in self.servers:
                assert conn.server is not None
                deadline = conn.server.next_deadline()
                if deadline is not None and deadline < server_at:
                    server_at, server_conn = deadline, conn
            at = min(heap_at, client_at, server_at)
            if at > cap:
                break
            self.now = max(self.now, at)
            if heap_at == at:
                _, _, kind, payload = heapq.heappop(self.heap)
                self.dispatch(kind, payload)
            elif client_at == at:
                actions = self.client.on_timer(self.now)
                if not actions and self.client.next_deadline() == client_at:
                    self.violation = f"client deadline {client_at} did not move when woken"
                self.client_actions(actions)
            else:
                assert server_conn is not None and server_conn.server is not None
                actions = server_conn.server.on_timer(self.now)
                if not actions and server_conn.server.next_deadline() == server_at:
                    self.violation = f"server deadline {server_at} did not move when woken"
                self.server_actions(server_conn, actions)
        return self.result(completed)

    def is_caught_up(self) -> bool:
        if self.client.state not in (ClientState.CONNECTED, ClientState.STREAMING):
            return False
        if self.conn is None or self.conn.in_flight or self.conn.proxy_buffer:
            return False
        verdict = _judge(self.expected(), self.record, self.scenario.client.last_event_id,
                         self.all_ids)
        return verdict.is_caught_up

    def expected(self) -> list[tuple[str, str, float]]:
        start = self.resume_index if self.scenario.client.last_event_id else None
        if start is None:
            start = self.subscribed_index
        if start is None:
            return []
        return self.published[start:]

    def result(self, completed: bool) -> SimulationResult:
        expected = self.expected()
        verdict = _judge(expected, self.record, self.scenario.client.last_event_id, self.all_ids)
        violation = self.violation or verdict.violation
        if violation is None and not verdict.is_caught_up:
            violation = _not_caught_up(verdict, len(expected))
        metrics = self.client.metrics
        return SimulationResult(
            seed=self.scenario.seed,
            published=len(expected),
            delivered=sum(isinstance(entry, Deliver) for _, entry in self.record),
            duplicates_suppressed=metrics.messages_deduplicated,
            gaps=sum(isinstance(entry, ReportGap) for _, entry in self.record),
            missed=verdict.missed,
            reconnects=metrics.reconnections,
            connections=metrics.connection_attempts,
            virtual_duration=self.now,
            completed=completed and violation is None,
            violation=violation,
            published_ids=tuple(entry[0] for entry in expected),
            record=tuple(self.record),
            transport_switches=self.switches,
            polls=self.polls,
        )

    def dispatch(self, kind: int, payload: object) -> None:
        if kind == _ARRIVE:
            conn, item = cast("tuple[_Connection, tuple[object, ...]]", payload)
            self.arrive(conn, item)
        elif kind == _REQUEST:
            assert isinstance(payload, _Connection)
            self.request_arrives(payload)
        elif kind == _PUBLISH:
            assert isinstance(payload, int)
            self.publish(payload)
        elif kind == _FAULT:
            self.fault(cast("Fault", payload))
        else:
            self.fault_ends(cast("Fault", payload))

    # -- publisher and server --------------------------------------------------------------

    def publish(self, n: int) -> None:
        stored = self.log.append(Event(data=self.scenario.event_data(n)), self.now)
        self.published.append((stored.id, stored.event.data, self.now))
        self.all_ids.add(stored.id)
        for conn in list(self.servers):
            server = conn.server
            assert server is not None
            if isinstance(server, LongPollSession):
                self.server_actions(conn, server.on_published(self.now))
            else:
                self.server_actions(conn, server.send(stored, self.now))

    def request_arrives(self, conn: _Connection) -> None:
        if not conn.is_open:
            return
        now = self.now
        if now < self.offline_until:
            self.send_back(conn, (_FAIL, "network unreachable"))
            return
        if now < self.partition_until:
            self.push(now + self.scenario.connect_timeout, _ARRIVE, (conn, (_FAIL, "timeout")))
            return
        if now < self.down_until:
            self.send_back(conn, (_FAIL, "connection refused"))
            return
        if now < self.deploy_until:
            self.send_back(conn, (_HEAD, 503, (("Content-Type", "text/plain"),)))
            self.send_back(conn, (_EOF,))
            return
        if self.resume_index is None:
            # Owed: what follows the client's id, or everything (after a gap report) when
            # the server does not know the id.
            initial = self.scenario.client.last_event_id
            ids = [entry[0] for entry in self.published]
            self.resume_index = ids.index(initial) + 1 if initial in ids else 0
        conn.requested_index = len(self.published)
        server: _ServerSide
        long_poll_url = self.scenario.client.long_poll_url
        if long_poll_url is not None and _same_endpoint(conn.request.url, long_poll_url):
            server = LongPollSession(self.scenario.long_poll, self.log)
            self.polls += 1
        else:
            server = ServerSession(self.scenario.server, self.log)
        conn.server = server
        self.servers.append(conn)
        target = conn.request.url.split("/", 3)[-1]
        headers = list(conn.request.headers)
        self.server_actions(conn, server.on_request("/" + target, headers, now))
        while isinstance(server, ServerSession) and server.is_replaying:
            # The replay's next steps, as fast as the connection takes them (the simulated
            # network has no send buffer to fill).
            self.server_actions(conn, server.continue_replay(now))

    def server_actions(self, conn: _Connection, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case SendHead():
                    self.send_back(conn, (_HEAD, action.status, action.headers))
                case Send():
                    self.send_data(conn, action.data)
                case Disconnect():
                    self.drop_server(conn)
                    self.send_back(conn, (_EOF,))
                case _:
                    raise AssertionError(f"unexpected server action {action!r}")

    def drop_server(self, conn: _Connection) -> None:
        if conn.server is not None:
            conn.server = None
            self.servers.remove(conn)

    def close_server(self, conn: _Connection) -> None:
        """The server learns the connection is gone: its session ends, output dropped."""
        if conn.server is not None:
            conn.server.close(self.now)
            self.drop_server(conn)

    def send_back(self, conn: _Connection, item: tuple[object, ...], delay: float = 0.0) -> None:
        at = max(self.now + self.scenario.latency, conn.last_arrival) + delay
        conn.last_arrival = at
        conn.in_flight += 1
        self.push(at, _ARRIVE, (conn, item))

    def send_data(self, conn: _Connection, data: bytes) -> None:
        rng = self.rng
        slow = [link for link in self.slow if link.at <= self.now]
        if slow:
            link = slow[-1]
            start = 0
            while start < len(data):
                size = rng.randint(1, link.max_chunk)
                self.send_back(conn, (_DATA, data[start : start + size]), link.delay)
                start += size
            return
        cuts = sorted(rng.randint(0, len(data)) for _ in range(rng.randint(0, 2)))
        start = 0
        for cut in [*cuts, len(data)]:
            if cut > start:
                self.send_back(conn, (_DATA, data[start:cut]))
                start = cut

    # -- the client side -------------------------------------------------------------------

    def client_actions(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Connect():
                    assert self.conn is None, "Connect while a connection is open"
                    self.conn_count += 1
                    conn = _Connection(self.conn_count, action.request)
                    self.conn = conn
                    threshold = [p.threshold for p in self.proxies if p.at <= self.now]
                    if threshold:
                        conn.proxy_threshold = threshold[-1]
                    self.push(self.now + self.scenario.latency, _REQUEST, conn)
                case Disconnect():
                    self.end_connection()
                case Deliver() | ReportGap():
                    self.record.append((self.now, action))
                case DeliverBatch():  # recorded as the events it hands out, in order
                    self.record += [(self.now, Deliver(event=e)) for e in action.events]
                case ReportTransport():
                    self.record.append((self.now, action))
                    self.switches += 1
                case ReportStatus() | ReportFailure() | ReportStale():  # CLOSED says it too
                    pass
                case _:
                    raise AssertionError(f"unexpected client action {action!r}")

    def end_connection(self) -> None:
        conn = self.conn
        if conn is not None:
            conn.is_open = False
            self.conn = None
            self.close_server(conn)

    def arrive(self, conn: _Connection, item: tuple[object, ...]) -> None:
        conn.in_flight -= 1
        if not conn.is_open or conn is not self.conn:
            return
        kind = item[0]
        if kind == _HEAD:
            status, headers = item[1], item[2]
            assert isinstance(status, int) and isinstance(headers, tuple)
            conn.has_head = True
            self.client_actions(self.client.on_response(status, headers, self.now))
        elif kind == _DATA:
            data = item[1]
            assert isinstance(data, bytes)
            if conn.is_silent:
                return
            if conn.proxy_threshold is not None:
                conn.proxy_buffer += data
                if len(conn.proxy_buffer) < conn.proxy_threshold:
                    return
                data = bytes(conn.proxy_buffer)
                conn.proxy_buffer.clear()
            self.deliver_data(conn, data)
        elif kind == _EOF:
            if conn.is_silent:
                return
            if conn.proxy_buffer:
                data = bytes(conn.proxy_buffer)
                conn.proxy_buffer.clear()
                self.deliver_data(conn, data)
                if conn is not self.conn:
                    return
            self.end_connection()
            if conn.has_head:
                self.client_actions(self.client.on_eof(self.now))
                self.note_position(conn)
            else:
                self.client_actions(self.client.on_connection_lost(self.now, "closed early"))
        else:
            reason = item[1]
            assert isinstance(reason, str)
            self.lose(reason)

    def deliver_data(self, conn: _Connection, data: bytes) -> None:
        if conn.cut_remaining is not None:
            if len(data) >= conn.cut_remaining:
                data = data[: conn.cut_remaining]
                if data:
                    self.feed_client(conn, data)
                if conn is self.conn:
                    self.break_connection(conn)
                return
            conn.cut_remaining -= len(data)
        self.feed_client(conn, data)

    def feed_client(self, conn: _Connection, data: bytes) -> None:
        self.client_actions(self.client.on_data(data, self.now))
        self.note_position(conn)

    def note_position(self, conn: _Connection) -> None:
        # A stream's bytes or a poll's whole answer may carry the client's first position.
        if self.subscribed_index is None and self.client.last_event_id:
            # The first position (or event id) that reached the client: from the request
            # that produced it on, every event is owed to the application (events published
            # at the same instant but before the request are not).
            self.subscribed_index = conn.requested_index

    def break_connection(self, conn: _Connection) -> None:
        if conn.cut_is_eof and conn.has_head:
            self.end_connection()
            self.client_actions(self.client.on_eof(self.now))
            self.note_position(conn)
        else:
            self.lose("connection cut")

    def lose(self, reason: str) -> None:
        self.end_connection()
        self.client_actions(self.client.on_connection_lost(self.now, reason))

    # -- faults ----------------------------------------------------------------------------

    def fault(self, fault: Fault) -> None:
        conn = self.conn
        match fault:
            case Cut():
                if conn is not None:
                    conn.cut_remaining = fault.after_bytes
                    conn.cut_is_eof = fault.is_eof
                    if fault.after_bytes == 0:
                        self.break_connection(conn)
            case Reset():
                if conn is not None:
                    self.lose("connection reset")
            case Stall():
                if conn is not None:
                    conn.is_silent = True
            case Restart():
                self.down_until = max(self.down_until, fault.at + fault.downtime)
                self.stop_servers()
                if not fault.is_log_kept:
                    self.epochs += 1
                    self.log = ReplayLog(self._replay_config())
            case Deploy():
                self.deploy_until = max(self.deploy_until, fault.at + fault.duration)
                self.stop_servers()
            case Partition():
                self.partition_until = max(self.partition_until, fault.at + fault.duration)
                if conn is not None:
                    conn.is_silent = True
            case SlowLink():
                self.slow.append(fault)
            case BufferingProxy():
                self.proxies.append(fault)
            case Offline():
                self.offline_until = max(self.offline_until, fault.at + fault.duration)
                if conn is not None:
                    conn.is_silent = True
                if fault.is_signalled:
                    self.is_offline_told = True
                    self.client_actions(self.client.on_offline(self.now))
            case Handoff():
                if conn is not None:
                    conn.is_silent = True
                if fault.is_signalled:
                    self.client_actions(self.client.on_network_changed(self.now))

    def fault_ends(self, fault: Fault) -> None:
        if isinstance(fault, SlowLink):
            self.slow.remove(fault)
        elif isinstance(fault, BufferingProxy):
            self.proxies.remove(fault)
        elif isinstance(fault, Offline) and self.now >= self.offline_until:
            # The network is back: a platform that said "offline" says "online".
            if self.is_offline_told:
                self.is_offline_told = False
                self.client_actions(self.client.on_online(self.now))

    def stop_servers(self) -> None:
        for conn in list(self.servers):
            assert conn.server is not None
            self.server_actions(conn, conn.server.close(self.now))


def simulate(
    scenario: Scenario, *, client_factory: ClientFactory | None = None
) -> SimulationResult:
    """Run one scenario to its end and check the invariant.

    The run goes on after the last publish and the last fault until the client has caught
    up (every published event delivered or covered by a gap report, nothing in flight) or
    ``scenario.settle_timeout`` virtual seconds have passed.

    Args:
        scenario: What to run.
        client_factory: Builds the client under test; a plain
            :class:`~sse_core.ClientSession` by default.

    Returns:
        The run's figures and verdict. The same scenario always gives an equal result.
    """
    factory = _default_factory if client_factory is None else client_factory
    return _Simulation(scenario, factory).run()


# --- random scenarios -------------------------------------------------------------------------

_PIECES = ("a", "é", "ß", "世界", "🎉", "Ω", " ", "x y", ":", "data", "\n", "∑", "😀😀", "id")


def _random_data(rng: random.Random, n: int) -> str:
    size = rng.randint(0, 6) if rng.random() < 0.95 else rng.randint(50, 400)
    pieces = [rng.choice(_PIECES) for _ in range(size)]
    return f"{n}:" + "".join(pieces)


def _random_fault(rng: random.Random, at: float) -> Fault:
    kind = rng.randrange(9)
    if kind == 0:
        return Cut(at=at, after_bytes=rng.randint(0, 120), is_eof=rng.random() < 0.5)
    if kind == 1:
        return Reset(at=at)
    if kind == 2:
        return Stall(at=at)
    if kind in (3, 4):
        return Restart(at=at, downtime=rng.uniform(0.0, 5.0), is_log_kept=kind == 3)
    if kind == 5:
        return Deploy(at=at, duration=rng.uniform(0.5, 10.0))
    if kind == 6:
        return Partition(at=at, duration=rng.uniform(1.0, 40.0))
    if kind == 7:
        return SlowLink(at=at, duration=rng.uniform(1.0, 15.0), max_chunk=rng.randint(1, 8),
                        delay=rng.uniform(0.0, 0.02))
    return BufferingProxy(at=at, duration=rng.uniform(1.0, 15.0), threshold=rng.randint(1, 4096))


def _with_long_polling(rng: random.Random, scenario: Scenario, duration: float) -> Scenario:
    """Let the client fall back to long-polling, and give it a reason to: a buffering proxy
    that holds streams for a while, with faults while it polls."""
    at = 0.0 if rng.random() < 0.3 else round(rng.uniform(0.0, duration * 0.6), 3)
    window = rng.uniform(10.0, 60.0)
    # Big enough to hold any stream back (padding included); sometimes one that lets some by.
    threshold = rng.choice([1 << 20, 1 << 20, 16384, rng.randint(1, 4096)])
    faults = [*scenario.faults, BufferingProxy(at=at, duration=window, threshold=threshold)]
    if at > 0.0:
        # The client moves onto the proxied network: the stream it had breaks.
        faults.append(Reset(at=at))
    for _ in range(rng.randint(0, 3)):
        faults.append(_random_fault(rng, round(rng.uniform(at, at + window), 3)))
    faults.sort(key=lambda fault: fault.at)
    # Publishing goes on after the proxy is gone, long enough for the client to try
    # streaming again (and find that it works) while the run lasts.
    end = max(at + window, scenario.publish_at[-1])
    count = len(scenario.publish_at)
    tail = sorted(round(rng.uniform(end, end + 50.0), 3) for _ in range(rng.randint(2, 8)))
    data = (*scenario.data, *(_random_data(rng, count + n) for n in range(len(tail))))
    stall_timeout = scenario.client.stall_timeout
    assert stall_timeout is not None
    client = attrs.evolve(
        scenario.client,
        long_poll_url=_LONG_POLL_URL,
        first_byte_timeout=rng.uniform(0.5, stall_timeout + 1.0),
        switch_after=rng.randint(1, 3),
        retry_streaming_after=rng.choice([None, rng.uniform(3.0, 40.0), rng.uniform(3.0, 40.0)]),
        long_poll_timeout=rng.choice([0.0, rng.uniform(0.5, 10.0), rng.uniform(0.5, 10.0)]),
        min_poll_interval=rng.uniform(0.1, 2.0),
        initial_transport=Transport.LONG_POLLING if rng.random() < 0.1 else Transport.STREAMING,
    )
    long_poll = LongPollConfig(
        max_hold=rng.uniform(1.0, 15.0),
        max_events=rng.choice([1, 3, 100]),
        max_bytes=rng.choice([None, 300, 1 << 20]),
        retry=rng.choice([None, None, 0, 500]),
    )
    return attrs.evolve(scenario, publish_at=(*scenario.publish_at, *tail), data=data,
                        faults=tuple(faults), transport="auto", client=client,
                        long_poll=long_poll)


#: Share of :func:`random_scenario` draws that may fall back to long-polling.
_LONG_POLL_SHARE = 0.2


def random_scenario(seed: int) -> Scenario:
    """A scenario drawn from ``seed``: a few dozen events, a mix of faults, varied limits.

    Every fault kind appears across seeds: cuts at arbitrary byte offsets (events carry
    multi-byte characters), resets, stalls, restarts that keep or lose the replay log,
    deploys answered with 503, partitions long enough to outlast a small replay window, slow
    links and buffering proxies.

    About one scenario in five has ``transport="auto"``: a buffering proxy holds streams
    back for 10 to 60 seconds (mostly for good, sometimes only up to a few KiB), so that the
    client switches to long-polling; more faults strike while it polls; the client tries
    streaming again after a drawn delay (or never). Long-poll limits (hold time, events and
    bytes per answer, immediate answers) vary too.

    Args:
        seed: Any int; the same seed gives the same scenario.

    Returns:
        The scenario.
    """
    rng = random.Random(seed)
    count = rng.randint(5, 40)
    duration = rng.uniform(10.0, 60.0)
    publish_at = tuple(sorted(round(rng.uniform(0.05, duration), 3) for _ in range(count)))
    data = tuple(_random_data(rng, n) for n in range(count))
    faults = [
        _random_fault(rng, round(rng.uniform(0.0, duration), 3))
        for _ in range(rng.randint(0, 4))
    ]
    stall_timeout = rng.uniform(3.0, 10.0)
    client = ClientConfig(
        url=_STREAM_URL,
        retry_statuses=frozenset({502, 503}),
        stall_timeout=stall_timeout,
        is_gzip_accepted=rng.random() < 0.3,
        dedup=rng.choice([None, DedupConfig(max_ids=2), DedupConfig()]),
        backoff=BackoffConfig(
            base_delay=rng.uniform(0.1, 1.0),
            max_delay=rng.uniform(2.0, 8.0),
            jitter=rng.choice(list(Jitter)),
            healthy_after=rng.uniform(0.5, 5.0),
        ),
    )
    server = ServerConfig(
        heartbeat_interval=stall_timeout / rng.uniform(0.8, 4.0),
        retry=rng.choice([None, None, 0, 200, 1000]),
        padding=rng.choice([0, 0, 2048]),
    )
    replay = ReplayConfig(
        max_events=rng.choice([3, 10, 1000]),
        max_bytes=rng.choice([None, 400, 1 << 20]),
        max_age=rng.choice([None, None, 5.0, 30.0]),
    )
    scenario = Scenario(
        seed=seed,
        publish_at=publish_at,
        data=data,
        faults=tuple(faults),
        client=client,
        server=server,
        replay=replay,
        latency=rng.uniform(0.001, 0.2),
    )
    if rng.random() < _LONG_POLL_SHARE:
        scenario = _with_long_polling(rng, scenario, duration)
    scenario = _with_network_signals(random.Random(f"network-signals-{seed}"), scenario, duration)
    more = random.Random(f"client-extras-{seed}")  # its own draws: the rest stays as it was
    if more.random() < 0.3:
        client = attrs.evolve(scenario.client, stale_after=more.uniform(0.5, 10.0))
        scenario = attrs.evolve(scenario, client=client)
    if more.random() < 0.3:
        batching = BatchConfig(max_events=more.randint(1, 30), max_delay=more.uniform(0.0, 2.0))
        scenario = attrs.evolve(scenario, client=attrs.evolve(scenario.client, batching=batching))
    return scenario


#: Share of :func:`random_scenario` draws whose device goes offline or changes network.
_NETWORK_SIGNAL_SHARE = 0.2


def _with_network_signals(rng: random.Random, scenario: Scenario, duration: float) -> Scenario:
    """Sometimes add an :class:`Offline` or :class:`Handoff` (mostly signalled). Drawn from
    a random source of their own, so that the rest of a seed's scenario stays as it was."""
    if rng.random() >= _NETWORK_SIGNAL_SHARE:
        return scenario
    added: list[Fault] = []
    for _ in range(rng.randint(1, 2)):
        at = round(rng.uniform(0.0, duration), 3)
        is_signalled = rng.random() < 0.8
        if rng.random() < 0.5:
            added.append(Offline(at=at, duration=rng.uniform(0.5, 40.0),
                                 is_signalled=is_signalled))
        else:
            added.append(Handoff(at=at, is_signalled=is_signalled))
    faults = tuple(sorted([*scenario.faults, *added], key=lambda fault: fault.at))
    return attrs.evolve(scenario, faults=faults)
