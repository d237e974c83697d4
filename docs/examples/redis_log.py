"""A Redis log shared by every worker: publish, then resume a client (needs a redis-server)."""

import asyncio
import os
import time

import redis.asyncio

from sse_core import Event
from sse_core.adapters.redis import RedisLog
from sse_core.state import Replay, ReplayConfig, TooOld, UnknownId


async def main() -> None:
    client = redis.asyncio.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    # One log per stream of events; every worker builds the same one.
    log = RedisLog(client, "sse:news", ReplayConfig(max_events=1000, max_age=3600.0))

    # A client that connects with no Last-Event-ID gets the log's position as its first id.
    position = await log.position()

    first = await log.append(Event(data="hello"), time.monotonic())
    await log.append(Event(data="world", event="greeting"), time.monotonic())
    print(first.id)  # e.g. 3f9c0d2a8b7e6f15-1733369112345-1: <epoch>-<ms>-<n>

    # The client reconnects (to any worker) with Last-Event-ID = position.
    result = await log.resume(position, time.monotonic())
    match result:
        case Replay(events=events):
            print("resumed exactly:", [stored.event.data for stored in events])
        case TooOld(missed=missed):
            print(f"gap: {missed} events were evicted")  # send the gap signal, then oldest()
        case UnknownId():
            print("gap: the log was wiped or the id is not ours")
    await client.aclose()


asyncio.run(main())
