"""The live tail of both Redis feeds (``RedisFeed`` on asyncio, ``SyncRedisFeed`` on a
thread) against a real redis-server: what one new event costs it (one ``XREAD``, its rows
checked by their epoch: no second call), and that the guarantees hold on that path -- rows
of an older sse_core (without the epoch), a trim the tail missed, a log made again under
another epoch.

The feeds are driven without an HTTP server: each step of the tail is recorded as the
server would receive it (``attach``), and every command the tail's client sends is
counted. Events are published through a log on a client of their own.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from sse_core import Event
from sse_core.state import ReplayConfig
from tests.adapters import redis_support
from tests.adapters.redis_support import RedisServer, redis, run

redis_feed = pytest.importorskip("sse_core.adapters.redis")
from sse_core._stream_log import TailStep  # noqa: E402 (after the skip above)
from sse_core.adapters._redis_scripts import APPEND  # noqa: E402
from sse_core.adapters._redis_tail import woken_entries  # noqa: E402

#: A redis-server of the test's own, without persistence.
plain = redis_support.plain

#: Seconds any one scenario may take; only a failure ever waits this long.
TIMEOUT = 60.0
KEY = "sse:tail"
#: The tail's wait (each timeout costs one read: counted apart), and the retention of every
#: log here.
BLOCK = 0.5
PATIENT = redis_feed.TailConfig(block_timeout=BLOCK, catch_up_timeout=10.0)
RETENTION = ReplayConfig(max_events=3, max_bytes=None)
#: The APPEND script of an sse_core that did not write the epoch into each entry.
OLD_APPEND = APPEND.replace(", 'epoch', epoch)", ")")


class Tail:
    """One feed's tail, the steps it handed over and the commands its client sent.

    Args:
        kind: ``"asyncio"`` or ``"sync"``.
        server: The redis-server.
        resp3: Whether the tail's client speaks RESP3 and decodes replies (redis-py hands
            ``XREAD``'s rows over in another shape then).
    """

    def __init__(self, kind: str, server: RedisServer, *, resp3: bool) -> None:
        self.kind = kind
        options: dict[str, Any] = {"socket_timeout": 5.0}
        if resp3:
            options.update(protocol=3, decode_responses=True)
        if kind == "asyncio":
            client = redis.asyncio.Redis.from_url(server.url, **options)
            self.feed = redis_feed.RedisFeed(client, KEY, RETENTION, tail=PATIENT)
        else:
            client = redis.Redis.from_url(server.url, **options)
            self.feed = redis_feed.SyncRedisFeed(client, KEY, RETENTION, tail=PATIENT)
        self.steps: list[TailStep] = []
        self.feed.attach(self.steps.append)
        self.commands: collections.Counter[str] = collections.Counter()
        self._count_commands(client)
        self.publisher = redis.Redis.from_url(server.url, socket_timeout=5.0)
        self.log = redis_feed.SyncRedisLog(self.publisher, KEY, RETENTION)

    def _count_commands(self, client: Any) -> None:
        send = client.execute_command
        counted = self.commands

        if self.kind == "asyncio":

            async def execute(*args: Any, **options: Any) -> Any:
                counted[str(args[0]).upper()] += 1
                return await send(*args, **options)
        else:

            def execute(*args: Any, **options: Any) -> Any:  # type: ignore[misc]
                counted[str(args[0]).upper()] += 1
                return send(*args, **options)

        client.execute_command = execute

    async def start(self) -> None:
        """Start the tail and wait until its mirror is loaded."""
        if self.kind == "asyncio":
            assert await self.feed.ready(None)
        else:
            assert await asyncio.to_thread(self.feed.ready, None)

    async def stop(self) -> None:
        """Stop the tail (its place in the log is kept: a start goes on from there)."""
        if self.kind == "asyncio":
            await self.feed.aclose()
        else:
            await asyncio.to_thread(self.feed.close)

    def publish(self, data: str, *, script: Any = None) -> str:
        """Append an event through the publisher's log (``script``: another APPEND)."""
        if script is not None:
            self.log._append_script = script
        return self.log.append(Event(data=data), time.monotonic()).id

    async def stopped_after_one(self) -> str:
        """Start, see one event handed over, stop; that event's id."""
        await self.start()
        first = self.publish("first")
        await self.until(lambda: self.delivered() == [first])
        await self.stop()
        return first

    def gaps(self) -> list[TailStep]:
        """The steps that reported a gap."""
        return [step for step in list(self.steps) if step.gap is not None]

    def delivered(self) -> list[str]:
        """The ids of every event handed over, in order."""
        return [stored.id for step in list(self.steps) for stored in step.events]

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds."""
        deadline = time.monotonic() + TIMEOUT
        while not predicate():
            assert time.monotonic() < deadline, (self.steps, self.commands)
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Stop the tail, close both clients."""
        await self.stop()
        client = self.feed.client
        if self.kind == "asyncio":
            await client.aclose()
        else:
            client.close()
        self.publisher.close()


Scenario = Callable[[Tail], Awaitable[None]]
Check = Callable[[Scenario], None]


@pytest.fixture(
    params=[("asyncio", False), ("asyncio", True), ("sync", False), ("sync", True)],
    ids=["asyncio", "asyncio-resp3", "sync", "sync-resp3"],
)
def check(request: pytest.FixtureRequest, plain: RedisServer) -> Check:
    """Run a scenario against a new tail of each feed (and each reply shape), closed after."""
    kind, resp3 = request.param

    def check_with(scenario: Scenario) -> None:
        async def body() -> None:
            tail = Tail(kind, plain, resp3=resp3)
            try:
                await scenario(tail)
            finally:
                await tail.close()

        run(body, TIMEOUT)

    return check_with


def test_each_new_event_costs_the_tail_one_request(check: Check) -> None:
    """Up to date, the tail hands each new event over from its ``XREAD`` alone: 20 events
    published one at a time cost 20 ``XREAD`` and no read script beyond the load, save one
    ``XREAD`` and one read per wait that timed out (``block_timeout``: the epoch check while
    idle). Before: an ``XREAD`` to wake, then the read script for the rows and the epoch,
    for each event."""

    async def scenario(tail: Tail) -> None:
        await tail.start()
        loaded = tail.commands["EVALSHA"]
        began = time.monotonic()
        ids = []
        for i in range(20):
            ids.append(tail.publish(f"e{i}"))
            await tail.until(lambda: len(tail.delivered()) == len(ids))
        timeouts = int((time.monotonic() - began) / BLOCK) + 1
        assert tail.delivered() == ids
        assert timeouts <= 8  # else the figures below could not tell the two apart (20 reads)
        assert tail.commands["EVALSHA"] - loaded <= timeouts, tail.commands
        assert 20 <= tail.commands["XREAD"] <= 20 + timeouts, tail.commands
        assert tail.gaps() == []

    check(scenario)


def test_rows_of_an_older_version_are_read_with_their_epoch(check: Check) -> None:
    """Events appended by an sse_core that did not write the epoch into each entry (a
    rolling upgrade) are still handed over, in order, once, without a gap: such rows are
    read again through the script that answers the epoch."""

    async def scenario(tail: Tail) -> None:
        await tail.start()
        old = tail.publisher.register_script(OLD_APPEND)
        new = tail.log._append_script
        ids = []
        for i in range(6):
            ids.append(tail.publish(f"e{i}", script=old if i % 2 else new))
            await tail.until(lambda: len(tail.delivered()) == len(ids))
        assert tail.delivered() == ids
        assert tail.commands["EVALSHA"] >= 4  # the load, and one read per old row
        assert tail.gaps() == []

    check(scenario)


def test_a_trim_the_tail_missed_is_a_gap(check: Check) -> None:
    """Events evicted before the tail read them (it was stopped while 6 were appended to a
    log that keeps 3): the rows its ``XREAD`` returns start after a hole, and the tail
    reports the gap and restarts the mirror from the oldest kept, never a silent skip."""

    async def scenario(tail: Tail) -> None:
        first = await tail.stopped_after_one()
        ids = [tail.publish(f"e{i}") for i in range(6)]
        tail.feed.start()
        await tail.until(lambda: tail.feed.gaps == 1 and tail.delivered()[-1:] == ids[-1:])
        assert [step.gap for step in tail.gaps()] == ["trimmed"]
        assert [stored.id for stored in tail.gaps()[0].events] == ids[3:]
        assert tail.delivered() == [first, *ids[3:]]

    check(scenario)


def test_a_log_made_again_under_another_epoch_is_a_gap_even_numbered_on(check: Check) -> None:
    """The log is deleted and made again under another epoch whose first entry happens to
    have the very id that would follow the tail's last one (say, restored by hand): only the
    epoch in the entry tells it apart, and the tail reports the gap and follows the new
    epoch."""

    async def scenario(tail: Tail) -> None:
        first = await tail.stopped_after_one()
        epoch, ms, n = first.split("-")
        follows = f"{int(ms) + 1}-{int(n) + 1}"
        client = tail.publisher
        client.delete(KEY, f"{KEY}:meta")
        client.xadd(KEY, {"s": "9", "e": "message", "d": "other", "epoch": "beef"}, id=follows)
        client.hset(f"{KEY}:meta", mapping={"epoch": "beef", "last": follows, "bytes": "40"})
        tail.feed.start()
        await tail.until(lambda: tail.feed.gaps == 1 and len(tail.delivered()) == 2)
        assert [step.gap for step in tail.gaps()] == ["epoch"]
        assert tail.delivered() == [first, f"beef-{follows}"]
        assert tail.feed.mirror.epoch == "beef" != epoch

    check(scenario)


def test_xread_replies_are_read_in_every_shape_redis_py_hands_over() -> None:
    """RESP2's ``[[key, entries]]``, RESP3's ``{key: entries}`` and ``{key: [entries]}``
    give the same entries; a timeout (``None``, ``[]``, ``{}``) gives none; anything else
    is the server's fault."""
    entries = [(b"5-1", {b"e": b"message"}), (b"5-2", {b"e": b"message"})]
    for reply in ([[b"k", entries]], {b"k": entries}, {"k": [entries]}):
        assert list(woken_entries(reply)) == entries
    for reply in (None, [], {}):
        assert list(woken_entries(reply)) == []
    from sse_core import RemoteProtocolError

    for bad in ([[b"k", entries], [b"j", entries]], {b"k": [entries, entries]}, [b"k"]):
        with pytest.raises(RemoteProtocolError):
            woken_entries(bad)
