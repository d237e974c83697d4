"""Publish an event exactly once to a Redis log, retrying through timeouts (needs a
redis-server)."""

import asyncio
import os

import redis.asyncio

from sse_core import Event
from sse_core.adapters.redis import RedisChannels
from sse_core.state import LogUnavailableError, StoredEvent


async def publish_once(
    channels: RedisChannels, name: str, event: Event, key: str, attempts: int = 5
) -> StoredEvent:
    """Publish ``event`` under ``key``, retrying while Redis does not answer. An attempt
    whose answer was lost (Redis stored the event, then the reply timed out) is not stored
    again: the retry answers the id Redis gave it."""
    for attempt in range(attempts):
        try:
            return await channels.publish(name, event, idempotency_key=key)
        except LogUnavailableError:
            if attempt == attempts - 1:
                raise  # not acknowledged: tell no one it was published
            await asyncio.sleep(0.1 * 2**attempt)  # well within the key's window (10 min)
    raise AssertionError("unreachable")


async def main() -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    channels = RedisChannels(redis.asyncio.Redis.from_url(url, socket_timeout=5.0))
    # One key per event, kept across its retries: a name of its own, or a uuid4 drawn once.
    shipped = Event(data="order 17 shipped")
    stored = await publish_once(channels, "orders", shipped, "order-17-shipped")

    # Published again under the same key (a retry whose first answer was lost, a second
    # publisher): nothing is stored, the answer is the first id.
    again = await publish_once(channels, "orders", shipped, "order-17-shipped")
    assert again.id == stored.id
    print(stored.id, "stored once")
    await channels.aclose()


asyncio.run(main())
