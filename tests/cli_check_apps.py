"""Servers that ``tests/test_cli_check.py`` points ``sse-core check`` at, each run as a
subprocess on a free loopback port (``python tests/cli_check_apps.py NAME PORT``).

sse_core's own, configured as the docs advise (``retry:``, heartbeats, a replay log):

- ``broadcast``: the ASGI :class:`~sse_core.adapters.asgi.EventStream` under uvicorn, an event
  published every 0.2 s by a task the lifespan starts.
- ``response``: the per-request ASGI ``StreamResponse`` under uvicorn (Starlette), a function
  of the last event ID: a counter that continues after it, an event every 0.2 s.

Peers nobody here wrote, used as their docs show (an event with an id every 0.2 s, from a
counter shared by all connections, as a live feed would be):

- ``sse-starlette``: ``EventSourceResponse`` under uvicorn.
- ``aiohttp-sse``: ``sse_response`` on aiohttp's own server.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from sse_core import Event, ServerConfig

#: Seconds between two published events.
TICK = 0.2
#: What sse_core's servers here run with.
CONFIG = ServerConfig(heartbeat_interval=1.0, retry=1500)
_START = time.monotonic()


def _live_number() -> int:
    """The number of the newest event of a live feed that publishes every :data:`TICK`."""
    return int((time.monotonic() - _START) / TICK)


def broadcast() -> Any:
    """The ASGI broadcast app, with a publisher started by the lifespan."""
    from sse_core.adapters.asgi import EventStream

    stream = EventStream(config=CONFIG)

    async def publish() -> None:
        for number in itertools.count(1):
            stream.publish(Event(data=f"tick {number}"))
            await asyncio.sleep(TICK)

    tasks: list[asyncio.Task[None]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" and not tasks:
            tasks.append(asyncio.get_running_loop().create_task(publish()))
        await stream(scope, receive, send)

    return app


def response() -> Any:
    """The per-request StreamResponse under Starlette: a counter after the last event ID."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    from sse_core.adapters.asgi import StreamResponse

    async def counter(last_event_id: str) -> AsyncIterator[Event]:
        start = int(last_event_id) + 1 if last_event_id.isdigit() else 1
        for number in itertools.count(start):
            yield Event(data=f"tick {number}", id=str(number))
            await asyncio.sleep(TICK)

    async def events(request: Request) -> StreamResponse:
        return StreamResponse(counter, config=CONFIG)

    return Starlette(routes=[Route("/events", events)])


def sse_starlette() -> Any:
    """sse-starlette's EventSourceResponse, as its README shows it, over a live feed."""
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    async def feed() -> AsyncIterator[dict[str, str]]:
        while True:
            await asyncio.sleep(TICK)
            number = _live_number()
            yield {"event": "tick", "id": str(number), "data": f"tick {number}"}

    async def events(request: Request) -> EventSourceResponse:
        return EventSourceResponse(feed())

    return Starlette(routes=[Route("/events", events)])


def _uvicorn(app: Any, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _aiohttp(port: int) -> None:
    from aiohttp import web
    from aiohttp_sse import sse_response

    async def events(request: web.Request) -> web.StreamResponse:
        async with sse_response(request) as sse:
            while sse.is_connected():
                await asyncio.sleep(TICK)
                number = _live_number()
                await sse.send(f"tick {number}", id=str(number), event="tick")
        return sse

    app = web.Application()
    app.router.add_get("/events", events)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    name, port = sys.argv[1], int(sys.argv[2])
    if name == "aiohttp-sse":
        _aiohttp(port)
    else:
        builders = {"broadcast": broadcast, "response": response, "sse-starlette": sse_starlette}
        _uvicorn(builders[name](), port)
