"""One contract, two logs: the in-memory ``ReplayLog`` and ``RedisLog`` on a real redis-server.

Every test in the first part runs against the in-memory log (through a thin awaitable view),
a ``RedisLog`` on a redis-server without persistence and one with AOF (``appendfsync
always``), a ``SyncRedisLog`` (the blocking client, called from threads), and a ``RedisLog``
on a valkey-server (the fork of Redis that speaks its protocol; its restarts, with and
without AOF, are in the second part).
Each Redis instance is started by the test, on a free loopback port in its own temporary
directory, and stopped by PID. The second part holds what only a log in another server can
meet: restarts with and without AOF, deleted keys, a failover that lost events, Redis
unreachable, any Last-Event-ID a client may send, a ServerSession resuming from the blocking
log, and the docs example.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sse_core import (
    ClockError,
    Event,
    InvalidConfigError,
    InvalidFieldError,
    Parser,
    Send,
    ServerConfig,
    ServerSession,
    serialize,
)
from sse_core.state import (
    GAP_EVENT_TYPE,
    POSITION_EVENT_TYPE,
    AsyncSharedLog,
    LogUnavailableError,
    Replay,
    ReplayConfig,
    ReplayLog,
    SharedLog,
    StoredEvent,
    TooOld,
    UnknownId,
)
from tests.adapters import redis_support
from tests.adapters.redis_support import RedisServer, run

redis = pytest.importorskip("redis", reason="redis (redis-py) is in the peers extra")
redis_log = pytest.importorskip("sse_core.adapters.redis")
from redis.asyncio.retry import Retry  # noqa: E402 (after the skip above)
from redis.backoff import NoBackoff  # noqa: E402

#: Seconds any one wait may take; only a failure ever waits this long.
TIMEOUT = 30.0


class SyncView:
    """A log called directly (``ReplayLog``, ``SyncRedisLog``) behind
    :class:`AsyncSharedLog`'s shape, so one test drives every log. A blocking Redis log is
    called from a worker thread (so two publishers really run at once); the in-memory one,
    which is not thread-safe, on the loop."""

    def __init__(self, log: Callable[[], SharedLog], *, threaded: bool) -> None:
        self._log = log
        self._threaded = threaded

    async def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._threaded:
            return await asyncio.to_thread(function, *args, **kwargs)
        return function(*args, **kwargs)

    async def position(self) -> str:
        return await self._call(lambda: self._log().position)  # type: ignore[no-any-return]

    async def append(self, event: Event, now: float) -> StoredEvent:
        return await self._call(self._log().append, event, now)  # type: ignore[no-any-return]

    async def resume(self, last_event_id: str, now: float, *, max_bytes: int | None = None
                     ) -> Any:
        return await self._call(self._log().resume, last_event_id, now, max_bytes=max_bytes)

    async def oldest(self, *, max_bytes: int | None = None) -> Replay:
        return await self._call(self._log().oldest, max_bytes=max_bytes)  # type: ignore[no-any-return]


class Harness:
    """One kind of log under test: how to make one, wipe it, and let time pass."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self.server: RedisServer | None = None
        self.clients: list[Any] = []
        self._clock = 1000.0
        self._wipes = 0
        self.memory = ReplayLog()
        if kind != "memory":
            program = "valkey-server" if kind == "valkey" else "redis-server"
            self.server = RedisServer(directory, aof=kind == "redis-aof", program=program)
            self.server.start()

    def _memory(self) -> SharedLog:
        return self.memory

    def make(self, config: ReplayConfig | None = None) -> AsyncSharedLog:
        """A log on the shared store (a new connection each time for Redis): call it twice
        for two publishers."""
        config = config or ReplayConfig()
        if self.server is None:
            self.memory = ReplayLog(attrs.evolve(config, epoch=f"boot{self._wipes}"))
            return SyncView(self._memory, threaded=False)
        if self.kind == "redis-sync":
            blocking = redis.Redis.from_url(self.server.url, socket_timeout=2.0)
            self.clients.append(blocking)
            log = redis_log.SyncRedisLog(blocking, "sse:test", config)
            return SyncView(lambda: log, threaded=True)
        client = self.server.client()
        self.clients.append(client)
        return redis_log.RedisLog(client, "sse:test", config)  # type: ignore[no-any-return]

    def second(self, config: ReplayConfig) -> AsyncSharedLog:
        """Another publisher on the store of the last log made."""
        if self.server is None:
            return SyncView(self._memory, threaded=False)
        return self.make(config)

    @property
    def now(self) -> float:
        """The clock to pass as ``now``."""
        return self._clock if self.server is None else time.monotonic()

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on the log's clock (Redis: really wait)."""
        if self.server is None:
            self._clock += seconds
        else:
            await asyncio.sleep(seconds)

    async def wipe(self) -> None:
        """Lose every event: a new process with a new epoch (memory), FLUSHALL (Redis)."""
        self._wipes += 1
        if self.server is None:
            self.memory = ReplayLog(attrs.evolve(self.memory.config, epoch=f"boot{self._wipes}"))
        else:
            flushed = self.clients[0].flushall()
            if not isinstance(flushed, bool):
                await flushed

    async def close(self) -> None:
        for client in self.clients:
            if isinstance(client, redis.Redis):
                client.close()
            else:
                await client.aclose()


@pytest.fixture(params=["memory", "redis", "redis-aof", "redis-sync", "valkey"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """Each kind of log, its Redis (if any) started for the test and stopped after."""
    made = Harness(request.param, tmp_path)
    try:
        yield made
    finally:
        if made.server is not None:
            made.server.stop()


def event(data: str) -> Event:
    return Event(data=data)


# -- the contract --------------------------------------------------------------------------


def test_both_logs_have_the_contracts_shape() -> None:
    """ReplayLog and SyncRedisLog have SharedLog's members, RedisLog AsyncSharedLog's (a
    runtime check sees names only; mypy checks the signatures: see _typed below)."""
    assert isinstance(ReplayLog(), SharedLog)
    # (isinstance() would read SyncRedisLog.position: a round trip to Redis.)
    assert all(hasattr(redis_log.SyncRedisLog, name) for name in ("position", "append",
                                                                  "resume", "oldest"))
    assert isinstance(redis_log.RedisLog(redis.asyncio.Redis(port=1), "k"), AsyncSharedLog)


def _typed(sync: Any, asynchronous: Any) -> tuple[SharedLog, SharedLog, AsyncSharedLog]:
    """For mypy: each log is assignable to its contract (never called)."""
    return ReplayLog(), redis_log.SyncRedisLog(sync, "k"), redis_log.RedisLog(asynchronous, "k")


def test_ids_order_events_across_two_concurrent_publishers(harness: Harness) -> None:
    """Two publishers (two connections for Redis) append 40 events each at once: the log
    keeps all 80, each publisher's in its own order, ids unique and in the log's order, and
    a resume after any of them gives exactly the events after it."""

    async def scenario() -> None:
        first = harness.make(ReplayConfig(max_events=1000))
        second = harness.second(ReplayConfig(max_events=1000))

        async def publish(log: AsyncSharedLog, name: str) -> list[StoredEvent]:
            stored = []
            for i in range(40):
                stored.append(await log.append(event(f"{name}{i}"), harness.now))
                await asyncio.sleep(0)
            return stored

        a, b = await asyncio.gather(publish(first, "a"), publish(second, "b"))
        everything = (await first.oldest()).events
        assert len(everything) == 80
        data = [stored.event.data for stored in everything]
        assert [d for d in data if d.startswith("a")] == [f"a{i}" for i in range(40)]
        assert [d for d in data if d.startswith("b")] == [f"b{i}" for i in range(40)]
        ids = [stored.id for stored in everything]
        assert len(set(ids)) == 80
        assert {s.id for s in a} | {s.id for s in b} == set(ids)
        for k in (0, 17, 40, 79):
            result = await second.resume(ids[k], harness.now)
            assert isinstance(result, Replay), result
            assert [s.id for s in result.events] == ids[k + 1 :]
            assert result.is_complete
        await harness.close()

    run(scenario)


def test_resume_gives_the_events_after_the_id_in_steps(harness: Harness) -> None:
    """A resume gives every event after the id, with the bytes the append returned; with
    max_bytes it comes in steps (each within the bound, one event at least) that add up to
    the same events."""

    async def scenario() -> None:
        log = harness.make(ReplayConfig(max_events=100))
        stored = [await log.append(event(f"event {i}"), harness.now) for i in range(10)]
        result = await log.resume(stored[3].id, harness.now)
        assert isinstance(result, Replay)
        assert result.events == tuple(stored[4:])
        assert result.encoded == b"".join(s.encoded for s in stored[4:])
        assert result.is_complete
        up_to_date = await log.resume(stored[-1].id, harness.now)
        assert up_to_date == Replay(events=())
        step_bytes = 2 * len(stored[5].encoded) + 1
        cursor, seen = stored[3].id, list[StoredEvent]()
        while True:
            step = await log.resume(cursor, harness.now, max_bytes=step_bytes)
            assert isinstance(step, Replay)
            assert 1 <= len(step.events) <= 2
            seen += step.events
            cursor = step.events[-1].id
            if step.is_complete:
                break
        assert seen == stored[4:]
        tiny = await log.resume(stored[0].id, harness.now, max_bytes=1)
        assert isinstance(tiny, Replay) and tiny.events == (stored[1],) and not tiny.is_complete
        await harness.close()

    run(scenario)


def test_position_marks_the_end_of_the_log(harness: Harness) -> None:
    """Resuming from the position taken before any event replays every event; from the
    position taken after them, nothing."""

    async def scenario() -> None:
        log = harness.make()
        start = await log.position()
        stored = [await log.append(event(f"e{i}"), harness.now) for i in range(3)]
        result = await log.resume(start, harness.now)
        assert isinstance(result, Replay) and result.events == tuple(stored)
        end = await log.position()
        assert end == stored[-1].id
        assert await log.resume(end, harness.now) == Replay(events=())
        await harness.close()

    run(scenario)


def test_too_old_after_trimming_by_count(harness: Harness) -> None:
    """With max_events=3, after 6 appends: the first id is TooOld with 2 missed (ids 1 and
    2), the third resumes exactly, and oldest() is the last three."""

    async def scenario() -> None:
        log = harness.make(ReplayConfig(max_events=3))
        stored = [await log.append(event(f"e{i}"), harness.now) for i in range(6)]
        assert await log.resume(stored[0].id, harness.now) == TooOld(
            last_event_id=stored[0].id, missed=2
        )
        result = await log.resume(stored[2].id, harness.now)
        assert isinstance(result, Replay) and result.events == tuple(stored[3:])
        assert (await log.oldest()).events == tuple(stored[3:])
        await harness.close()

    run(scenario)


def test_too_old_after_trimming_by_bytes(harness: Harness) -> None:
    """With max_bytes just over three events' bytes, only the newest three are kept; an
    event bigger than max_bytes alone evicts everything (clients behind it: TooOld) while a
    client that received it is up to date."""

    async def scenario() -> None:
        # Each event is `body` bytes plus its id line (12 bytes here in memory, 37 in Redis):
        # 3 fit in 3 * (body + 40), 4 do not (4 * (body + 12) is more, body being > 72).
        body = len(serialize(event("e0" + "x" * 200)))
        size = body + 40
        log = harness.make(ReplayConfig(max_events=100, max_bytes=3 * size))
        stored = [await log.append(event(f"e{i}" + "x" * 200), harness.now) for i in range(6)]
        kept = (await log.oldest()).events
        assert sum(len(s.encoded) for s in kept) <= 3 * size
        assert kept == tuple(stored[3:])
        if harness.server is not None:  # the script's count is the bytes readers get
            counted = harness.clients[0].hget("sse:test:meta", "bytes")
            if not isinstance(counted, bytes):
                counted = await counted
            assert int(counted) == sum(len(s.encoded) for s in kept)
        assert await log.resume(stored[1].id, harness.now) == TooOld(
            last_event_id=stored[1].id, missed=1
        )
        huge = await log.append(event("h" * (4 * size)), harness.now)
        assert (await log.oldest()).events == ()
        assert await log.resume(stored[5].id, harness.now) == TooOld(
            last_event_id=stored[5].id, missed=1
        )
        assert await log.resume(huge.id, harness.now) == Replay(events=())
        await harness.close()

    run(scenario)


def test_too_old_after_trimming_by_age(harness: Harness) -> None:
    """With max_age=2 s, 20 events appended 2.5 s ago are gone at the next call (a read
    evicts too): the client that saw the newest of them is still up to date, the one that
    saw the first gets TooOld with 19 missed, and an event appended after is kept."""

    async def scenario() -> None:
        log = harness.make(ReplayConfig(max_events=100, max_age=2.0))
        stored = [await log.append(event(f"e{i}"), harness.now) for i in range(20)]
        await harness.advance(2.5)
        assert await log.resume(stored[19].id, harness.now) == Replay(events=())
        assert await log.resume(stored[0].id, harness.now) == TooOld(
            last_event_id=stored[0].id, missed=19
        )
        assert (await log.oldest()).events == ()
        later = await log.append(event("later"), harness.now)
        result = await log.resume(stored[19].id, harness.now)
        assert isinstance(result, Replay) and result.events == (later,)
        await harness.close()

    run(scenario)


def test_unknown_ids(harness: Harness) -> None:
    """Ids the log cannot place are UnknownId: empty, not of the log's form, of another
    epoch, not issued yet, or forged at the limits of Redis's ids."""

    async def scenario() -> None:
        log = harness.make()
        stored = [await log.append(event(f"e{i}"), harness.now) for i in range(3)]
        newest = stored[-1].id
        epoch, _, rest = newest.partition("-")
        head, _, number = newest.rpartition("-")
        huge = 2**64 - 1  # forged ids at Redis's limits: refused there, so never sent
        for unknown in ["", "garbage", f"other{epoch}-{rest}", f"{head}-{int(number) + 10}",
                        f"{epoch}-{huge}-{huge}", f"{epoch}-{huge + 1}-0",
                        f"{epoch}-{huge}-5"]:
            assert await log.resume(unknown, harness.now) == UnknownId(last_event_id=unknown)
        await harness.close()

    run(scenario)


def test_a_wiped_log_starts_a_new_epoch_and_old_ids_get_the_gap(harness: Harness) -> None:
    """After the log loses everything (Redis: FLUSHALL; memory: a new process with its own
    epoch), an old id is UnknownId -- also once new events with the same numbers exist, so
    no client resumes silently past events it never got; the position has a new epoch."""

    async def scenario() -> None:
        log = harness.make()
        before = [await log.append(event(f"old{i}"), harness.now) for i in range(3)]
        position = await log.position()
        await harness.wipe()
        assert await log.resume(before[0].id, harness.now) == UnknownId(
            last_event_id=before[0].id
        )
        after = [await log.append(event(f"new{i}"), harness.now) for i in range(5)]
        for old in [*(stored.id for stored in before), position]:
            assert await log.resume(old, harness.now) == UnknownId(last_event_id=old)
        assert after[0].id.partition("-")[0] != before[0].id.partition("-")[0]
        assert (await log.oldest()).events == tuple(after)
        await harness.close()

    run(scenario)


def test_now_going_backwards_is_refused(harness: Harness) -> None:
    """Like every object that takes ``now``, a log refuses one earlier than before."""

    async def scenario() -> None:
        log = harness.make()
        await log.append(event("a"), 50.0 + harness.now)
        with pytest.raises(ClockError):
            await log.append(event("b"), harness.now - 10.0)
        with pytest.raises(ClockError):
            await log.resume("x", harness.now - 10.0)
        await harness.close()

    run(scenario)


# -- what only a log in another server meets -------------------------------------------------

#: A redis-server without persistence, and one with AOF; ``each_server``: and on Valkey.
server, each_server = redis_support.server, redis_support.each_server


def test_a_restart_keeps_the_epoch_with_aof_and_starts_a_new_one_without(
    each_server: RedisServer,
) -> None:
    """Redis killed (SIGKILL) and started again: with AOF the log is intact -- same epoch,
    every acknowledged event there, clients resume exactly; without persistence every old id
    is UnknownId (the explicit gap), even once new events are appended. Valkey alike."""
    server = each_server

    async def scenario() -> None:
        # A pooled connection is dead after the restart: the client retries once on a new one.
        client = redis.asyncio.Redis.from_url(
            server.url, socket_timeout=2.0, retry=Retry(NoBackoff(), 1),
            retry_on_error=[redis.exceptions.ConnectionError],
        )
        log = redis_log.RedisLog(client, "sse:restart")
        stored = [await log.append(event(f"e{i}"), time.monotonic()) for i in range(5)]
        server.crash()
        server.start()
        if server.aof:
            result = await log.resume(stored[1].id, time.monotonic())
            assert isinstance(result, Replay) and result.events == tuple(stored[2:])
            more = await log.append(event("after"), time.monotonic())
            assert more.id.partition("-")[0] == stored[0].id.partition("-")[0]
            result = await log.resume(stored[-1].id, time.monotonic())
            assert isinstance(result, Replay) and result.events == (more,)
        else:
            for old in stored:
                assert await log.resume(old.id, time.monotonic()) == UnknownId(
                    last_event_id=old.id
                )
            await log.append(event("after"), time.monotonic())
            assert await log.resume(stored[0].id, time.monotonic()) == UnknownId(
                last_event_id=stored[0].id
            )
        await client.aclose()

    run(scenario)


@pytest.mark.parametrize("deleted", ["sse:gone", "sse:gone:meta"])
def test_a_deleted_key_starts_a_new_epoch(server: RedisServer, deleted: str) -> None:
    """Deleting the stream or the hash beside it (an operator's DEL, an eviction policy)
    leaves a log that is not intact: old ids are UnknownId before and after new appends,
    which get a new epoch and start numbering again."""

    async def scenario() -> None:
        client = server.client()
        log = redis_log.RedisLog(client, "sse:gone")
        old = [await log.append(event(f"old{i}"), time.monotonic()) for i in range(3)]
        await client.delete(deleted)
        assert await log.resume(old[0].id, time.monotonic()) == UnknownId(
            last_event_id=old[0].id
        )
        new = [await log.append(event(f"new{i}"), time.monotonic()) for i in range(4)]
        assert new[0].id.partition("-")[0] != old[0].id.partition("-")[0]
        assert new[0].id.endswith("-1")
        for stored in old:
            assert await log.resume(stored.id, time.monotonic()) == UnknownId(
                last_event_id=stored.id
            )
        assert (await log.oldest()).events == tuple(new)
        await client.aclose()

    run(scenario)


def test_acknowledged_events_lost_in_a_failover_are_a_gap(server: RedisServer) -> None:
    """A failover to a replica that had not received the last two acknowledged events
    (made here by deleting them and winding ``last`` back): a client that saw them is
    UnknownId, also once new events take their numbers -- the rows after its id start at or
    before its number, because their ms part is later."""

    async def scenario() -> None:
        client = server.client()
        log = redis_log.RedisLog(client, "sse:failover")
        stored = [await log.append(event(f"e{i}"), time.monotonic()) for i in range(5)]
        lost = [s.id.split("-", 1)[1] for s in stored[3:]]
        await client.xdel("sse:failover", *lost)
        await client.hset("sse:failover:meta", "last", stored[2].id.split("-", 1)[1])
        await asyncio.sleep(0.01)  # the replacements are appended in a later millisecond
        assert await log.resume(stored[4].id, time.monotonic()) == UnknownId(
            last_event_id=stored[4].id
        )
        new = [await log.append(event(f"new{i}"), time.monotonic()) for i in range(3)]
        assert [s.id.rpartition("-")[2] for s in new] == ["4", "5", "6"]
        for seen in stored[3:]:
            assert await log.resume(seen.id, time.monotonic()) == UnknownId(
                last_event_id=seen.id
            )
        result = await log.resume(stored[2].id, time.monotonic())
        assert isinstance(result, Replay) and result.events == tuple(new)
        await client.aclose()

    run(scenario)


def test_redis_unreachable_raises_and_acknowledges_nothing(server: RedisServer) -> None:
    """With Redis stopped, append (and resume, position) raise LogUnavailableError, an
    SSEError; once Redis is back (AOF: intact) the log goes on, and the refused event is not
    in it."""

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(
            server.url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        log = redis_log.RedisLog(client, "sse:down")
        first = await log.append(event("stored"), time.monotonic())
        server.stop()
        with pytest.raises(LogUnavailableError) as caught:
            await log.append(event("refused"), time.monotonic())
        assert caught.value.operation == "append"
        assert isinstance(caught.value.__cause__, redis.exceptions.RedisError)
        with pytest.raises(LogUnavailableError):
            await log.resume(first.id, time.monotonic())
        with pytest.raises(LogUnavailableError):
            await log.position()
        blocking = redis.Redis.from_url(server.url, socket_connect_timeout=1.0)
        with pytest.raises(LogUnavailableError):
            redis_log.SyncRedisLog(blocking, "sse:down").append(event("refused"), 1.0)
        blocking.close()
        server.start()
        later = await log.append(event("later"), time.monotonic())
        data = [s.event.data for s in (await log.oldest()).events]
        assert "refused" not in data
        assert data == (["stored", "later"] if server.aof else ["later"])
        assert later.id != first.id
        await client.aclose()

    run(scenario)


def test_a_server_session_resumes_from_the_sync_redis_log(server: RedisServer) -> None:
    """ServerSession takes any SharedLog: over a SyncRedisLog a new client gets the log's
    position, a client with an id resumes exactly, one with an old epoch's id gets the gap
    signal then the position, all decided by the session from the log's answers."""
    client = redis.Redis.from_url(server.url, socket_timeout=2.0)
    log = redis_log.SyncRedisLog(client, "sse:session")
    config = ServerConfig(heartbeat_interval=None)
    fresh = ServerSession(config, log).on_request("/", [], 1.0)
    items = Parser().feed(b"".join(a.data for a in fresh if isinstance(a, Send)))
    position = [item for item in items if isinstance(item, Event)][-1].id
    stored = [log.append(event(f"e{i}"), 2.0) for i in range(4)]
    for last_event_id, expected in [(position, [f"e{i}" for i in range(4)]),
                                    (stored[1].id, ["e2", "e3"])]:
        actions = ServerSession(config, log).on_request(
            "/", [("Last-Event-ID", last_event_id)], 3.0
        )
        items = Parser().feed(b"".join(a.data for a in actions if isinstance(a, Send)))
        data = [item.data for item in items if isinstance(item, Event)
                and item.event == "message"]
        assert data == expected
    stale = "0123456789abcdef-1-1"
    actions = ServerSession(config, log).on_request("/", [("Last-Event-ID", stale)], 4.0)
    items = Parser().feed(b"".join(a.data for a in actions if isinstance(a, Send)))
    types = [item.event for item in items if isinstance(item, Event)]
    assert types[0] == GAP_EVENT_TYPE and types[-1] == POSITION_EVENT_TYPE
    last = items[-1]
    assert isinstance(last, Event) and last.id == stored[-1].id
    client.close()


def test_a_client_that_decodes_responses_works_the_same(server: RedisServer) -> None:
    """With ``decode_responses=True`` redis-py hands over str, not bytes: the same ids,
    bytes and answers (non-ASCII data included)."""

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(server.url, decode_responses=True)
        log = redis_log.RedisLog(client, "sse:text")
        stored = [await log.append(Event(data=f"é{i}\nzwei", event="ünï"), 1.0)
                  for i in range(3)]
        result = await log.resume(stored[0].id, 2.0)
        assert isinstance(result, Replay) and result.events == tuple(stored[1:])
        assert stored[2].encoded == serialize(
            Event(data="é2\nzwei", event="ünï", id=stored[2].id)
        )
        await client.aclose()

    run(scenario)


def test_any_last_event_id_gets_one_of_the_three_answers(server: RedisServer) -> None:
    """Whatever a client sends as Last-Event-ID (any text, or ids of the log's form with the
    real epoch or another and numbers up to past Redis's limits), the Redis log answers
    Replay, TooOld or UnknownId -- no exception -- and a Replay is exactly the events after
    the number the id claims."""
    client = redis.Redis.from_url(server.url, socket_timeout=2.0)
    log = redis_log.SyncRedisLog(client, "sse:any", ReplayConfig(max_events=6))
    stored = [log.append(event(f"e{i}"), 1.0) for i in range(9)]
    epoch = stored[0].id.partition("-")[0]
    parts = st.integers(min_value=0, max_value=2**65)
    ids = st.one_of(
        st.text(max_size=40),
        st.tuples(st.sampled_from([epoch, "0" * len(epoch), ""]), parts, parts).map(
            lambda t: f"{t[0]}-{t[1]}-{t[2]}"
        ),
        st.sampled_from([s.id for s in stored]),
    )

    @settings(max_examples=150, deadline=None)
    @given(ids)
    def check(last_event_id: str) -> None:
        result = log.resume(last_event_id, 1.0)
        assert isinstance(result, (Replay, TooOld, UnknownId))
        if isinstance(result, Replay):
            claimed = int(last_event_id.rpartition("-")[2])
            assert [int(e.id.rpartition("-")[2]) for e in result.events] == list(
                range(claimed + 1, 10)
            )

    check()
    client.close()


def test_redis_log_refuses_bad_arguments() -> None:
    """An epoch in the config (Redis keeps it), an empty key, a bad read_count or max_bytes,
    and an event with an id of its own are refused before any I/O."""
    client = redis.asyncio.Redis(port=1)  # never connected to
    with pytest.raises(InvalidConfigError, match="epoch"):
        redis_log.RedisLog(client, "k", ReplayConfig(epoch="boot"))
    with pytest.raises(InvalidConfigError):
        redis_log.RedisLog(client, "")
    with pytest.raises(InvalidConfigError):
        redis_log.RedisLog(client, "k", read_count=0)
    log = redis_log.RedisLog(client, "k")

    async def scenario() -> None:
        with pytest.raises(InvalidFieldError, match="assigns ids"):
            await log.append(Event(data="x", id="mine"), 1.0)
        with pytest.raises(InvalidConfigError):
            await log.resume("a-1-1", 1.0, max_bytes=0)
        assert await log.resume("not ours", 1.0) == UnknownId(last_event_id="not ours")

    run(scenario)


def test_the_docs_example_runs_against_a_real_redis(server: RedisServer) -> None:
    """docs/examples/redis_log.py, shown on docs/adapters/redis.rst, runs as written
    against a real redis-server (its URL in REDIS_URL)."""
    done = redis_support.run_example("redis_log.py", server.url)
    assert done.returncode == 0, done.stderr
    assert "resumed exactly" in done.stdout
