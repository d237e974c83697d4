"""Servers that ``tests/test_cli_check.py`` points ``sse-core check`` at, each run as a
subprocess on a free loopback port (``python tests/cli_check_apps.py NAME PORT``).

sse_core's own, configured as the docs advise (``retry:``, heartbeats, a replay log):

- ``broadcast``: the ASGI :class:`~sse_core.adapters.asgi.EventStream` under uvicorn, an event
  published every 0.2 s by a task the lifespan starts.
- ``response``: the per-request ASGI ``StreamResponse`` under uvicorn (Starlette), a function
  of the last event ID: a counter that continues after it, an event every 0.2 s.

The same broadcast app with its own gzip off, behind :class:`GzipMiddleware` (a gzip layer
as a framework or proxy might add, written here so that its flushing is known):

- ``gzip-flushed``: compresses each body message and flushes it (``Z_SYNC_FLUSH``): every
  event leaves at once, decodable on its own.
- ``gzip-batched``: flushes after every 10th body message only: events wait about 2 s in
  the compressor, then come in a burst.
- ``gzip-held``: never flushes before the end of the body (``Z_FINISH``): a live stream's
  events stay in the compressor; only the gzip header leaves.

``broadcast-hypercorn``: the broadcast app under hypercorn, which speaks HTTP/2 -- with
prior knowledge over cleartext (h2c), and over TLS when given a certificate and its key
(``... broadcast-hypercorn PORT CERTFILE KEYFILE``; ALPN offers h2 and http/1.1).

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
import zlib
from collections.abc import AsyncIterator
from typing import Any

import attrs

from sse_core import Event, ServerConfig

#: Seconds between two published events.
TICK = 0.2
#: What sse_core's servers here run with.
CONFIG = ServerConfig(heartbeat_interval=1.0, retry=1500)
_START = time.monotonic()


def _live_number() -> int:
    """The number of the newest event of a live feed that publishes every :data:`TICK`."""
    return int((time.monotonic() - _START) / TICK)


def broadcast(*, is_compressed: bool = True) -> Any:
    """The ASGI broadcast app, with a publisher started by the lifespan (its own gzip off
    when not ``is_compressed``)."""
    from sse_core.adapters.asgi import EventStream

    stream = EventStream(config=CONFIG if is_compressed else
                         attrs.evolve(CONFIG, is_compression_enabled=False))

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


class GzipMiddleware:
    """Compress ``text/event-stream`` responses with gzip when the request accepts it,
    flushing the compressor (``Z_SYNC_FLUSH``) after every ``flush_every``-th body message
    (0: only at the end). What the compressor gives is sent at once, even the gzip header
    alone."""

    def __init__(self, app: Any, flush_every: int) -> None:
        self.app = app
        self.flush_every = flush_every

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Run the app, compressing its stream responses."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        accepted = b"gzip" in dict(scope["headers"]).get(b"accept-encoding", b"")
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
        count = 0
        is_compressed = False

        async def compressing(message: dict[str, Any]) -> None:
            nonlocal count, is_compressed
            if message["type"] == "http.response.start":
                headers = dict(message["headers"])
                is_compressed = accepted and headers.get(b"content-type", b"").startswith(
                    b"text/event-stream")
                if is_compressed:
                    message = {**message, "headers": [*message["headers"],
                                                      (b"content-encoding", b"gzip"),
                                                      (b"vary", b"accept-encoding")]}
            elif message["type"] == "http.response.body" and is_compressed:
                data = compressor.compress(message.get("body", b""))
                count += 1
                if not message.get("more_body", False):
                    data += compressor.flush(zlib.Z_FINISH)
                elif self.flush_every and count % self.flush_every == 0:
                    data += compressor.flush(zlib.Z_SYNC_FLUSH)
                if not data and message.get("more_body", False):
                    return
                message = {**message, "body": data}
            await send(message)

        await self.app(scope, receive, compressing)


def gzipped(flush_every: int) -> Any:
    """The broadcast app, its own gzip off, behind :class:`GzipMiddleware`."""
    return GzipMiddleware(broadcast(is_compressed=False), flush_every)


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


def _hypercorn(app: Any, port: int, tls: list[str]) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.loglevel = "WARNING"
    if tls:
        config.certfile, config.keyfile = tls
    asyncio.run(serve(app, config))


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
    elif name == "broadcast-hypercorn":
        _hypercorn(broadcast(), port, sys.argv[3:5])
    else:
        builders = {"broadcast": broadcast, "response": response, "sse-starlette": sse_starlette,
                    "gzip-flushed": lambda: gzipped(1), "gzip-batched": lambda: gzipped(10),
                    "gzip-held": lambda: gzipped(0)}
        _uvicorn(builders[name](), port)
