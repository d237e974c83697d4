"""Two workers serving one Redis channel: an event published anywhere reaches the clients
of both, and a client resumes on the other worker (needs a redis-server)."""

import asyncio
import os

from sse_core import ClientConfig, Event
from sse_core.adapters.asyncio import EventSource, EventStreamServer
from sse_core.adapters.redis import RedisChannels
from sse_core.state import ReplayConfig


async def read(url: str, count: int, last_event_id: str = "") -> list[Event]:
    config = ClientConfig(url=url, last_event_id=last_event_id)
    received = []
    async with EventSource(config) as source:
        async for event in source:
            received.append(event)
            if len(received) == count:
                break
    return received


async def main() -> None:
    channels = RedisChannels.from_url(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"),
        prefix="example:",  # channel "news" is the Redis stream "example:news"
        config=ReplayConfig(max_events=10_000, max_age=3600.0),
    )
    # Two workers; in production, one per process or host, each with its own feed.
    async with EventStreamServer(feed=channels.feed("news")) as one, EventStreamServer(
        feed=channels.feed("news")
    ) as two:
        url_one = "http://{}:{}/events".format(*one.address)
        url_two = "http://{}:{}/events".format(*two.address)
        reader = asyncio.create_task(read(url_one, 2))
        await one.wait_for_subscribers()
        for n in range(3):
            await channels.publish("news", Event(data=f"update {n}"))  # appended to Redis
        first_two = await reader
        # The client comes back on the other worker with its Last-Event-ID.
        rest = await read(url_two, 1, last_event_id=first_two[-1].id)
    assert [event.data for event in first_two + rest] == ["update 0", "update 1", "update 2"]
    print("every event once, in order, across two workers")
    await channels.aclose()


asyncio.run(asyncio.wait_for(main(), 30.0))
