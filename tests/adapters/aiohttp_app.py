"""The routes of ``response_apps.py`` served by ``aiohttp.web`` with sse_core's aiohttp
``StreamResponse`` (the same generators), plus ``GET /job``, which resumes from a shared
``ReplayLog``, and ``GET /quiet?name=N``, one event then ten seconds of silence without
heartbeats (so only the watch on the connection sees a client go); its generator's
``finally`` writes the file ``N`` in ``$SSE_TEST_MARKS``.

A middleware adds ``X-Request-Id`` to every response and enables aiohttp's compression on
it, as compression middlewares do: the stream keeps the session's own gzip.

Run as ``python aiohttp_app.py PORT [--handler-cancellation]`` (``web.run_app``; with the
flag aiohttp cancels a handler whose client goes).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from aiohttp import web
from response_apps import (
    CONFIG,
    PAGE,
    broken_async,
    chat_async,
    flood_async,
    idle_async,
    mark,
    resume_async,
)

from sse_core import Event, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters.aiohttp import StreamResponse
from sse_core.state import ReplayLog

routes = web.RouteTableDef()
#: The job's events, kept for the clients that resume it.
JOB_LOG = ReplayLog()


@web.middleware
async def request_id(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Add a header to every response and ask aiohttp to compress it."""
    response = await handler(request)
    response.headers["X-Request-Id"] = "r-1"
    response.enable_compression()
    return response


@routes.post("/chat")
async def chat(request: web.Request) -> StreamResponse:
    body = await request.json()
    return StreamResponse(chat_async(body["words"]), config=CONFIG)


@routes.get("/idle")
async def idle(request: web.Request) -> StreamResponse:
    return StreamResponse(idle_async(request.query["name"]), config=CONFIG)


@routes.get("/resume")
async def resume(request: web.Request) -> StreamResponse:
    return StreamResponse(resume_async, config=CONFIG)


@routes.get("/broken")
async def broken(request: web.Request) -> StreamResponse:
    return StreamResponse(broken_async(), config=CONFIG)


@routes.get("/flood")
async def flood(request: web.Request) -> StreamResponse:
    return StreamResponse(
        flood_async(request.query["name"]), config=CONFIG, options=ServerOptions(send_timeout=1.0)
    )


#: Seconds the quiet route waits after its first event.
QUIET = 10.0


async def quiet_async(name: str) -> AsyncIterator[str]:
    """One event, then a long wait with no heartbeat; marks its ``finally``."""
    try:
        yield "first"
        await anyio.sleep(QUIET)
        yield "second"
    finally:
        mark(name)


@routes.get("/quiet")
async def quiet(request: web.Request) -> StreamResponse:
    return StreamResponse(
        quiet_async(request.query["name"]), config=ServerConfig(heartbeat_interval=None)
    )


async def job_steps(last_event_id: str) -> AsyncIterator[Event]:
    """Two new steps per request (the log gives them their ids); what the client missed
    before comes from the log."""
    for step in ("a", "b"):
        yield Event(data=f"step {step} after {last_event_id or 'nothing'}")


@routes.get("/job")
async def job(request: web.Request) -> StreamResponse:
    return StreamResponse(job_steps, config=CONFIG, replay_log=JOB_LOG)


@routes.get("/page")
async def page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


def app() -> web.Application:
    """The application."""
    application = web.Application(middlewares=[request_id])
    application.add_routes(routes)
    return application


if __name__ == "__main__":
    web.run_app(
        app(), host="127.0.0.1", port=int(sys.argv[1]), print=None,
        handler_cancellation="--handler-cancellation" in sys.argv,
    )
