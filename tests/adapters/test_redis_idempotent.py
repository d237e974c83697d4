"""Publishing exactly once to the Redis log: an append under an ``idempotency_key``.

A timeout can come after Redis ran the append script; a publisher that retries without a key
stores the event twice. With a key, Redis keeps the first answer beside the log, atomically
with the append, for a window: a retry stores nothing and answers the same id. Every test
starts its own redis-server (and, where it says so, a valkey-server: ``each_plain``) on a
free loopback port; the timeout is a real one (Redis kept busy by a script past the
publisher's ``socket_timeout``).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sse_core import Event, InvalidConfigError, InvalidFieldError, RemoteProtocolError
from sse_core._stream_log import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    appended_once,
    check_idempotency_key,
    event_digest,
)
from sse_core.adapters.asyncio import EventStreamServer
from sse_core.state import (
    POSITION_EVENT_TYPE,
    IdempotencyConflictError,
    LogUnavailableError,
)
from tests.adapters import redis_support
from tests.adapters.redis_support import RedisServer, StreamReader, redis, run

server, plain = redis_support.server, redis_support.plain
each_server, each_plain = redis_support.each_server, redis_support.each_plain

redis_log = pytest.importorskip("sse_core.adapters.redis")
from redis.asyncio.retry import Retry as AsyncRetry  # noqa: E402 (after the skip above)
from redis.backoff import NoBackoff  # noqa: E402
from redis.retry import Retry  # noqa: E402

from sse_core.testing import Delay  # noqa: E402
from tests._threads import ProxyThread  # noqa: E402

RedisLog, SyncRedisLog = redis_log.RedisLog, redis_log.SyncRedisLog
TailConfig = redis_log.TailConfig

#: Seconds any one scenario may take; only a failure ever waits this long.
TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parent.parent.parent
KEY = "sse:news"
#: What keeps redis-py from sending CLIENT SETINFO on connect (``driver_info`` in newer redis-py).
NO_SETINFO: dict[str, Any] = (
    {"driver_info": None} if importlib.util.find_spec("redis.driver_info")
    else {"lib_name": None, "lib_version": None}
)
#: Seconds the proxy holds Redis's answers back, and the publisher's socket timeout.
LATE_BY, PUBLISHER_TIMEOUT = 2.0, 0.5


def sync_client(redis_server: RedisServer, **kwargs: Any) -> Any:
    """A blocking client that never retries a command by itself."""
    kwargs.setdefault("socket_timeout", 2.0)
    return redis.Redis.from_url(redis_server.url, retry=Retry(NoBackoff(), 0), **kwargs)


class Logs:
    """The asyncio log or the blocking one behind one awaitable shape (the blocking one
    called from a thread)."""

    def __init__(
        self, kind: str, redis_server: RedisServer, *, url: str | None = None,
        socket_timeout: float = 2.0, retries: int = 0,
    ) -> None:
        self.kind = kind
        # ``retries`` of its own on a new connection after a timeout or a lost connection (0:
        # none); no HELLO (RESP2) nor CLIENT SETINFO on connect: the append is the
        # connection's first command.
        options: dict[str, Any] = {
            "socket_timeout": socket_timeout, "protocol": 2, **NO_SETINFO,
            "retry_on_error": [redis.exceptions.TimeoutError, redis.exceptions.ConnectionError],
        }
        url = redis_server.url if url is None else url
        if kind == "asyncio":
            self.client: Any = redis.asyncio.Redis.from_url(
                url, retry=AsyncRetry(NoBackoff(), retries), **options
            )
            self.log: Any = RedisLog(self.client, KEY)
        else:
            self.client = redis.Redis.from_url(
                url, retry=Retry(NoBackoff(), retries), **options
            )
            self.log = SyncRedisLog(self.client, KEY)

    async def append(self, event: Event, key: str | None = None) -> Any:
        """Append ``event`` (under ``key``; no key: the call of an sse_core without keys)."""
        if key is None:
            return await self._call(self.log.append, event, time.monotonic())
        return await self._call(self.log.append, event, time.monotonic(), idempotency_key=key)

    async def oldest(self) -> Any:
        """The oldest kept events."""
        return await self._call(self.log.oldest)

    async def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.kind == "asyncio":
            return await function(*args, **kwargs)
        return await asyncio.to_thread(function, *args, **kwargs)

    async def close(self) -> None:
        """Close the client."""
        if self.kind == "asyncio":
            await self.client.aclose()
        else:
            self.client.close()


KINDS = pytest.mark.parametrize("kind", ["asyncio", "blocking"])


def xlen(redis_server: RedisServer, key: str = KEY) -> int:
    """How many entries the stream holds, asked on a connection of its own."""
    client = sync_client(redis_server)
    try:
        return int(client.xlen(key))
    finally:
        client.close()


# -- the pure parts -------------------------------------------------------------------------


def test_keys_are_checked_and_events_told_apart_by_their_stored_fields() -> None:
    """A key is 1 to 200 visible ASCII characters (a uuid, ``order-17-shipped``); anything
    else is an :class:`InvalidFieldError` naming the field. Two events differ in digest when
    their type or data differ (and only then)."""
    for good in ("k", "order-17-shipped", "3f2c1e4a-9b7d-4c1e-8f00-0123456789ab",
                 "x" * MAX_IDEMPOTENCY_KEY_LENGTH, "a:b/c#{d}"):
        assert check_idempotency_key(good) == good
    for bad in ("", " ", "a b", "tab\there", "line\n", "é", "x" * 201, b"bytes", 17, None):
        with pytest.raises(InvalidFieldError) as raised:
            check_idempotency_key(bad)
        assert raised.value.field == "idempotency_key"
    digest = event_digest("message", "x")
    assert digest == event_digest("message", "x") and len(digest) == 32
    assert len({digest, event_digest("message", "y"), event_digest("other", "x"),
                event_digest("messagex", ""), event_digest("message", "x\n")}) == 5


def test_the_answer_to_a_keyed_append_is_read_in_the_core() -> None:
    """Redis's answers: stored now, answered before (``same``: the first id), another event
    (``other``: refused, naming the first id), or something else (a protocol error)."""
    fresh = appended_once(["e1", "5-1"], "k", "message", "x")
    again = appended_once([b"e1", b"5-1", b"same"], "k", "message", "x")
    assert fresh == again and fresh.id == "e1-5-1" and fresh.encoded == again.encoded
    with pytest.raises(IdempotencyConflictError) as raised:
        appended_once(["e1", "5-1", "other"], "k", "message", "y")
    assert (raised.value.key, raised.value.stored_id) == ("k", "e1-5-1")
    with pytest.raises(RemoteProtocolError):
        appended_once(["e1", "5-1", "maybe"], "k", "message", "x")


# -- against Redis and Valkey ---------------------------------------------------------------


@KINDS
def test_a_retry_under_the_same_key_stores_nothing_and_answers_the_same_id(
    each_plain: RedisServer, kind: str
) -> None:
    """The second append under a key returns the first's stored event (same id, same bytes)
    and stores nothing (XLEN unchanged; readers see it once); the key's record expires
    within the window; an append without a key is not affected (it stores again)."""

    async def scenario() -> None:
        logs = Logs(kind, each_plain)
        first = await logs.append(Event(data="shipped"), "order-17-shipped")
        again = await logs.append(Event(data="shipped"), "order-17-shipped")
        assert again == first
        assert xlen(each_plain) == 1
        assert [s.id for s in (await logs.oldest()).events] == [first.id]
        other = await logs.append(Event(data="shipped"), "order-18-shipped")
        assert other.id != first.id and xlen(each_plain) == 2
        unkeyed = await logs.append(Event(data="shipped"))
        assert unkeyed.id not in (first.id, other.id) and xlen(each_plain) == 3
        client = sync_client(each_plain)
        ttl = client.pttl(f"{KEY}#once:order-17-shipped")
        assert 0 < ttl <= 600_000
        assert client.dbsize() == 4  # the stream, its hash, two keys' records: nothing else
        client.close()
        await logs.close()

    run(scenario, TIMEOUT)


@KINDS
def test_another_event_under_a_used_key_is_refused(each_plain: RedisServer, kind: str) -> None:
    """A key names one event: another event (other data, or another type) under a key
    answered before is refused with :class:`IdempotencyConflictError` naming the first id,
    and nothing is stored."""

    async def scenario() -> None:
        logs = Logs(kind, each_plain)
        first = await logs.append(Event(data="shipped"), "order-17")
        for other in (Event(data="cancelled"), Event(data="shipped", event="order")):
            with pytest.raises(IdempotencyConflictError) as raised:
                await logs.append(other, "order-17")
            assert (raised.value.key, raised.value.stored_id) == ("order-17", first.id)
        assert xlen(each_plain) == 1
        assert await logs.append(Event(data="shipped"), "order-17") == first
        await logs.close()

    run(scenario, TIMEOUT)


def test_a_bad_key_or_window_is_refused_before_anything_is_sent(plain: RedisServer) -> None:
    """A key that is not 1 to 200 visible ASCII characters is an :class:`InvalidFieldError`
    and nothing reaches Redis; a window that is not a positive number is refused where the
    log, the feed's tail or the channels are configured."""
    client = sync_client(plain)
    log = SyncRedisLog(client, KEY)
    for bad in ("", "a b", "x" * 201, 5):
        with pytest.raises(InvalidFieldError, match="idempotency_key"):
            log.append(Event(data="x"), time.monotonic(), idempotency_key=bad)
    assert client.dbsize() == 0
    for window in (0, -1.0, float("nan"), float("inf"), 30 * 86400 + 1, 1e300, "10", True):
        with pytest.raises(InvalidConfigError):
            SyncRedisLog(client, KEY, idempotency_window=window)
        with pytest.raises(InvalidConfigError):
            TailConfig(idempotency_window=window)
    assert log.idempotency_window == redis_log.DEFAULT_IDEMPOTENCY_WINDOW == 600.0
    client.close()


def test_a_key_is_forgotten_after_its_window(plain: RedisServer) -> None:
    """Within the window (set on the feed's ``TailConfig``) a retry answers the first id;
    once the window has passed Redis has forgotten the key, and the same key appends
    anew."""
    feed = redis_log.SyncRedisFeed(
        sync_client(plain), KEY, tail=TailConfig(idempotency_window=0.5)
    )
    assert feed.log.idempotency_window == 0.5
    first = feed.publish(Event(data="x"), idempotency_key="k")
    assert feed.publish(Event(data="x"), idempotency_key="k") == first
    record = f"{KEY}#once:k"
    deadline = time.monotonic() + TIMEOUT
    while feed.client.exists(record):
        assert time.monotonic() < deadline, "the key's record never expired"
        time.sleep(0.05)
    later = feed.publish(Event(data="x"), idempotency_key="k")
    assert later.id != first.id and xlen(plain) == 2
    feed.client.close()


@KINDS
def test_a_wiped_log_takes_the_retry_anew(plain: RedisServer, kind: str) -> None:
    """When the log was wiped since the first append (its copy is lost), a retry under the
    same key appends the event anew, in the new epoch: after FLUSHALL, after a restart
    without persistence, and after the log's keys alone were deleted (the key's record
    survives, but it names an event of another epoch)."""

    async def scenario() -> None:
        logs = Logs(kind, plain)
        admin = sync_client(plain)
        event = Event(data="x")
        first = await logs.append(event, "k")

        admin.flushall()
        second = await logs.append(event, "k")
        assert second.id.split("-")[0] != first.id.split("-")[0]  # a new epoch
        assert xlen(plain) == 1 and await logs.append(event, "k") == second

        admin.delete(KEY, f"{KEY}:meta")
        assert admin.exists(f"{KEY}#once:k")
        third = await logs.append(event, "k")
        assert third.id.split("-")[0] not in (first.id.split("-")[0], second.id.split("-")[0])
        assert xlen(plain) == 1 and await logs.append(event, "k") == third
        admin.close()
        await logs.close()

        plain.stop()
        plain.start()
        logs = Logs(kind, plain)
        fourth = await logs.append(event, "k")
        assert fourth.id.split("-")[0] != third.id.split("-")[0] and xlen(plain) == 1
        assert [s.id for s in (await logs.oldest()).events] == [fourth.id]
        await logs.close()

    run(scenario, TIMEOUT)


def test_a_restart_with_aof_keeps_the_keys(server: RedisServer) -> None:
    """A restart with AOF keeps the log and the keys' records: a retry after it answers
    the first id (no double); without persistence the retry appends anew (the first copy
    was lost with the log)."""
    before = sync_client(server)
    first = SyncRedisLog(before, KEY).append(Event(data="x"), time.monotonic(),
                                             idempotency_key="k")
    before.close()
    server.stop()
    server.start()
    client = sync_client(server)
    again = SyncRedisLog(client, KEY).append(Event(data="x"), time.monotonic(),
                                            idempotency_key="k")
    assert (again == first) is server.aof
    assert xlen(server) == 1
    client.close()


@pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "unkeyed"])
@KINDS
def test_a_retry_after_a_real_timeout_stores_once_with_a_key_and_twice_without(
    each_plain: RedisServer, kind: str, keyed: bool
) -> None:
    """The hole and the fix: the publisher reaches Redis through the project's fault proxy,
    which holds Redis's answers back past the publisher's socket timeout, so the append
    runs but its answer comes too late (LogUnavailableError). Retried without a key the
    event is stored twice (readers see it twice, under two ids); retried with the key it
    is stored once, and the retry answers the id Redis gave the first attempt."""

    async def scenario() -> None:
        direct = Logs(kind, each_plain)
        await direct.append(Event(data="before"))  # Redis has the script: EVALSHA runs it
        with ProxyThread(("127.0.0.1", each_plain.port)) as proxy:
            host, port = proxy.address
            logs = Logs(kind, each_plain, url=f"redis://{host}:{port}/0",
                        socket_timeout=PUBLISHER_TIMEOUT)
            proxy.schedule(Delay(latency=LATE_BY))  # the publisher's first connection
            key = "3f2c1e4a-9b7d-4c1e-8f00-0123456789ab" if keyed else None
            event = Event(data="once")
            with pytest.raises(LogUnavailableError, match="Timeout"):
                await logs.append(event, key)
            assert proxy.stats.delays == 1
            # The append ran, though its answer was lost: the event is in Redis already.
            ran = [s.id for s in (await direct.oldest()).events if s.event.data == "once"]
            assert len(ran) == 1
            retried = await logs.append(event, key)  # a new connection: no delay
            await logs.close()
        kept = [s.id for s in (await direct.oldest()).events if s.event.data == "once"]
        if keyed:
            assert kept == ran == [retried.id]
        else:
            assert kept == [*ran, retried.id]  # the hole: two copies, two ids
        await direct.close()

    run(scenario, TIMEOUT)


@pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "unkeyed"])
@KINDS
def test_redis_pys_own_retry_stores_once_with_a_key_and_twice_without(
    plain: RedisServer, kind: str, keyed: bool
) -> None:
    """A client that retries by itself after a timeout (redis-py's ``retry``, as
    ``RedisChannels.from_url`` sets for lost connections) resends the append on a new
    connection: the publisher sees one success, and without a key the event is stored
    twice, silently; with a key, once (the retry resends the same key)."""

    async def scenario() -> None:
        direct = Logs(kind, plain)
        await direct.append(Event(data="before"))  # Redis has the script
        with ProxyThread(("127.0.0.1", plain.port)) as proxy:
            host, port = proxy.address
            logs = Logs(kind, plain, url=f"redis://{host}:{port}/0",
                        socket_timeout=PUBLISHER_TIMEOUT, retries=1)
            proxy.schedule(Delay(latency=LATE_BY))
            stored = await logs.append(Event(data="once"), "k" if keyed else None)
            assert proxy.stats.delays == 1 and proxy.stats.accepted == 2
            await logs.close()
        kept = [s.id for s in (await direct.oldest()).events if s.event.data == "once"]
        assert stored.id == kept[-1]
        assert len(kept) == (1 if keyed else 2)
        await direct.close()

    run(scenario, TIMEOUT)


def test_the_cost_benchmark_runs(plain: RedisServer) -> None:
    """benchmarks/bench_idempotent.py runs (a few appends per way, on a redis-server of its
    own; ``plain`` only makes sure one is installed) and reports each way."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_idempotent", "--count", "50"],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    assert done.returncode == 0, done.stderr
    for way in ("unkeyed", "keyed, new key", "keyed, retry", "per remembered key"):
        assert way in done.stdout


def test_a_live_feed_delivers_a_retried_event_once(each_plain: RedisServer) -> None:
    """A client of a worker fed from the log receives an event published twice under one
    key once, followed by the next event; so do the channels' publish and a blocking
    feed's."""

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(each_plain.url, socket_timeout=2.0)
        channels = redis_log.RedisChannels(client, tail=TailConfig(block_timeout=0.2))
        feed = channels.feed("news")
        blocking = redis_log.SyncRedisFeed(sync_client(each_plain), "sse:news")
        stream_server = EventStreamServer(feed=feed)
        await stream_server.start()
        try:
            reader = await StreamReader.open(stream_server.address)
            first = await reader.next_event()
            assert first is not None and first.event == POSITION_EVENT_TYPE
            a = await feed.publish(Event(data="a"), idempotency_key="a")
            assert await feed.publish(Event(data="a"), idempotency_key="a") == a
            b = await channels.publish("news", Event(data="b"), idempotency_key="b")
            assert await channels.publish("news", Event(data="b"), idempotency_key="b") == b
            c = await asyncio.to_thread(
                functools.partial(blocking.publish, Event(data="c"), idempotency_key="c")
            )
            assert await asyncio.to_thread(
                functools.partial(blocking.publish, Event(data="c"), idempotency_key="c")
            ) == c
            # The same key on another channel names another event.
            await channels.publish("sport", Event(data="a"), idempotency_key="a")
            await feed.publish(Event(data="end"))
            seen = await reader.read_data(4)
            assert [(e.data, e.id) for e in seen[:3]] == [
                ("a", a.id), ("b", b.id), ("c", c.id)
            ]
            assert seen[3].data == "end"
            assert xlen(each_plain, "sse:news") == 4 and xlen(each_plain, "sse:sport") == 1
            await reader.close()
        finally:
            await stream_server.aclose()
            blocking.client.close()
            await channels.aclose()

    run(scenario, TIMEOUT)


def test_the_trio_feed_publishes_once_under_a_key(plain: RedisServer) -> None:
    """``TrioRedisFeed.publish`` takes the key too: a retry answers the same id."""
    trio = pytest.importorskip("trio", reason="trio is in the test extra")
    feed = redis_log.TrioRedisFeed(sync_client(plain), KEY)

    async def twice() -> tuple[Any, Any]:
        first = await feed.publish(Event(data="x"), idempotency_key="k")
        return first, await feed.publish(Event(data="x"), idempotency_key="k")

    first, again = trio.run(twice)
    assert first == again and xlen(plain) == 1
    feed.client.close()


def test_the_docs_example_runs_against_a_real_redis(plain: RedisServer) -> None:
    """docs/examples/redis_once.py, shown on docs/adapters/redis.rst, runs as written
    against a real redis-server (its URL in REDIS_URL) and stores its event once."""
    done = redis_support.run_example("redis_once.py", plain.url)
    assert done.returncode == 0, done.stderr
    assert "stored once" in done.stdout
    assert xlen(plain, "sse:orders") == 1
