"""Applications that the per-request response tests run under real servers (uvicorn,
hypercorn, gunicorn): FastAPI (``fastapi_app``), Starlette (``starlette_app``), Litestar
(``litestar_app``), Quart (``quart_app``), Django's ASGI handler (``django_asgi_app``), Flask
(``flask_app``) and Django's WSGI handler (``django_app``), each with the same routes.

Litestar calls an ASGI application a handler returns, so its handlers return the
``StreamResponse``. Quart's and Django's views return their own response objects and never
see the ASGI ``send``, so there the stream routes are ASGI endpoints mounted in front of the
framework's application (:func:`mounted`), which serves every other path.

- ``POST /chat`` with a JSON body ``{"words": [...]}``: one event per word, then ``[DONE]``.
- ``GET /idle?name=N``: ``first``, ``second``, then ``more`` for ever, with a long silence
  (heartbeats only) before each; the generator's ``finally`` writes the file ``N`` in
  ``$SSE_TEST_MARKS``.
- ``GET /resume``: a function of the last event ID; yields it, then ids after it.
- ``GET /broken``: one event, then the generator raises.
- ``GET /flood?name=N``: 64 KiB events as fast as the client takes them, with a one-second
  ``send_timeout`` (ASGI only); marks its ``finally`` as ``/idle`` does.
- ``GET /hello``: a plain text answer of the framework's own (Quart and Django ASGI only:
  what the mount passes through).
- ``GET /page``: a page whose ``EventSource`` reads ``/resume`` over two connections (the
  browser resumes with ``Last-Event-ID`` when the first ends) and writes what it got into
  the DOM (FastAPI and Flask only).

Every stream sends heartbeats after 0.2 s of silence.
"""

import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio

from sse_core import Event, ServerConfig
from sse_core.adapters import ServerOptions, wsgi
from sse_core.adapters.asgi import StreamResponse

CONFIG = ServerConfig(heartbeat_interval=0.2, retry=1500)

#: The browser's page: eight events, then the result in the DOM and the title "done".
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>waiting</title></head>
<body><pre id="result"></pre>
<script>
const got = [];
const source = new EventSource("/resume");
function on(event) {
  got.push([event.type, event.data, event.lastEventId]);
  if (got.length === 8) {
    source.close();
    document.getElementById("result").textContent = JSON.stringify(got);
    document.title = "done";
  }
}
source.addEventListener("message", on);
source.addEventListener("resumed", on);
</script></body></html>
"""
#: Seconds the idle route is silent between its two events.
IDLE = 1.5


def mark(name: str) -> None:
    """Record that a generator's ``finally`` ran (a file the test waits for); written aside
    and renamed, so that the test never reads it half-written."""
    path = Path(os.environ["SSE_TEST_MARKS"], name)
    path.with_suffix(".part").write_text(str(time.monotonic()))
    path.with_suffix(".part").replace(path)


def resumed_ids(last_event_id: str) -> list[dict[str, Any]]:
    """What the resume route yields for a last event ID."""
    start = int(last_event_id) + 1 if last_event_id.isdigit() else 1
    return [{"data": f"after {last_event_id or 'nothing'}", "event": "resumed"}] + [
        {"data": f"n{n}", "id": str(n)} for n in range(start, start + 3)
    ]


# --- ASGI: FastAPI and Starlette ------------------------------------------------------------


async def chat_async(words: list[str]) -> AsyncIterator[str | Event]:
    """One event per word, then ``[DONE]``."""
    for word in words:
        yield json.dumps({"delta": word})
    yield Event(data="[DONE]", event="done")


async def idle_async(name: str) -> AsyncIterator[str]:
    """Events with long silences between, for ever; marks its ``finally``."""
    try:
        yield "first"
        await anyio.sleep(IDLE)
        yield "second"
        while True:
            await anyio.sleep(IDLE)
            yield "more"
    finally:
        mark(name)


async def resume_async(last_event_id: str) -> AsyncIterator[dict[str, Any]]:
    """The resume route's items."""
    for item in resumed_ids(last_event_id):
        yield item


async def flood_async(name: str) -> AsyncIterator[str]:
    """64 KiB events for ever; marks its ``finally``."""
    try:
        while True:
            yield "x" * 65536
    finally:
        mark(name)


async def broken_async() -> AsyncIterator[str]:
    """One event, then an error."""
    yield "before the error"
    raise RuntimeError("the model crashed")


def _fastapi() -> Any:
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse

    app = FastAPI()

    @app.post("/chat")
    async def chat(request: Request) -> StreamResponse:
        body = await request.json()
        return StreamResponse(chat_async(body["words"]), config=CONFIG)

    @app.get("/idle")
    async def idle(name: str) -> StreamResponse:
        return StreamResponse(idle_async(name), config=CONFIG)

    @app.get("/resume")
    async def resume() -> StreamResponse:
        return StreamResponse(resume_async, config=CONFIG)

    @app.get("/broken")
    async def broken() -> StreamResponse:
        return StreamResponse(broken_async(), config=CONFIG)

    @app.get("/flood")
    async def flood(name: str) -> StreamResponse:
        return StreamResponse(
            flood_async(name), config=CONFIG, options=ServerOptions(send_timeout=1.0)
        )

    @app.get("/page")
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    return app


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    async def chat(request: Request) -> StreamResponse:
        body = await request.json()
        return StreamResponse(chat_async(body["words"]), config=CONFIG)

    async def idle(request: Request) -> StreamResponse:
        return StreamResponse(idle_async(request.query_params["name"]), config=CONFIG)

    async def resume(request: Request) -> StreamResponse:
        return StreamResponse(resume_async, config=CONFIG)

    async def broken(request: Request) -> StreamResponse:
        return StreamResponse(broken_async(), config=CONFIG)

    async def flood(request: Request) -> StreamResponse:
        return StreamResponse(
            flood_async(request.query_params["name"]), config=CONFIG,
            options=ServerOptions(send_timeout=1.0),
        )

    return Starlette(
        routes=[
            Route("/chat", chat, methods=["POST"]),
            Route("/idle", idle),
            Route("/resume", resume),
            Route("/broken", broken),
            Route("/flood", flood),
        ]
    )


def _litestar() -> Any:
    from litestar import Litestar, get, post
    from litestar.params import JSONBody

    # Litestar calls what a handler returns when its annotation is an ASGI application.
    @post("/chat")
    async def chat(data: JSONBody[dict[str, Any]]) -> StreamResponse:
        return StreamResponse(chat_async(data["words"]), config=CONFIG)

    @get("/idle")
    async def idle(name: str) -> StreamResponse:
        return StreamResponse(idle_async(name), config=CONFIG)

    @get("/resume")
    async def resume() -> StreamResponse:
        return StreamResponse(resume_async, config=CONFIG)

    @get("/broken")
    async def broken() -> StreamResponse:
        return StreamResponse(broken_async(), config=CONFIG)

    @get("/flood")
    async def flood(name: str) -> StreamResponse:
        return StreamResponse(
            flood_async(name), config=CONFIG, options=ServerOptions(send_timeout=1.0)
        )

    return Litestar([chat, idle, resume, broken, flood])


# --- Quart and Django's ASGI handler: the stream routes mounted in front --------------------

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


async def _body(receive: Any) -> bytes:
    """The request body, read from ``receive`` (the endpoint is the ASGI application)."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _query(scope: Any, name: str) -> str:
    """One query parameter of the request."""
    return str(parse_qs(scope["query_string"].decode("latin-1"))[name][0])


async def _chat_endpoint(scope: Any, receive: Any, send: Any) -> None:
    words = json.loads(await _body(receive))["words"]
    await StreamResponse(chat_async(words), config=CONFIG)(scope, receive, send)


async def _idle_endpoint(scope: Any, receive: Any, send: Any) -> None:
    await StreamResponse(idle_async(_query(scope, "name")), config=CONFIG)(scope, receive, send)


async def _resume_endpoint(scope: Any, receive: Any, send: Any) -> None:
    await StreamResponse(resume_async, config=CONFIG)(scope, receive, send)


async def _broken_endpoint(scope: Any, receive: Any, send: Any) -> None:
    await StreamResponse(broken_async(), config=CONFIG)(scope, receive, send)


async def _flood_endpoint(scope: Any, receive: Any, send: Any) -> None:
    response = StreamResponse(
        flood_async(_query(scope, "name")), config=CONFIG, options=ServerOptions(send_timeout=1.0)
    )
    await response(scope, receive, send)


ENDPOINTS: dict[str, ASGIApp] = {
    "/chat": _chat_endpoint,
    "/idle": _idle_endpoint,
    "/resume": _resume_endpoint,
    "/broken": _broken_endpoint,
    "/flood": _flood_endpoint,
}


def mounted(app: ASGIApp) -> ASGIApp:
    """``app`` with the stream routes (``ENDPOINTS``) served in front of it."""

    async def dispatch(scope: Any, receive: Any, send: Any) -> None:
        endpoint = ENDPOINTS.get(scope["path"]) if scope["type"] == "http" else None
        await (endpoint or app)(scope, receive, send)

    return dispatch


def _quart() -> Any:
    from quart import Quart

    app = Quart(__name__)

    @app.get("/hello")
    async def hello() -> str:
        return "a Quart view"

    return mounted(app)


def _django_asgi() -> Any:
    _django_settings()
    from django.core.asgi import get_asgi_application

    return mounted(get_asgi_application())


# --- WSGI: Flask and Django -----------------------------------------------------------------


def chat_sync(words: list[str]) -> Iterator[str | Event]:
    """One event per word, then ``[DONE]``."""
    for word in words:
        yield json.dumps({"delta": word})
    yield Event(data="[DONE]", event="done")


def idle_sync(name: str) -> Iterator[str]:
    """Events with long silences between, for ever; marks its ``finally``."""
    try:
        yield "first"
        time.sleep(IDLE)
        yield "second"
        while True:
            time.sleep(IDLE)
            yield "more"
    finally:
        mark(name)


def broken_sync() -> Iterator[str]:
    """One event, then an error."""
    yield "before the error"
    raise RuntimeError("the model crashed")


def _flask() -> Any:
    from flask import Flask, request

    app = Flask(__name__)

    @app.post("/chat")
    def chat() -> wsgi.StreamResponse:
        return wsgi.StreamResponse(chat_sync(request.get_json()["words"]), config=CONFIG)

    @app.get("/idle")
    def idle() -> wsgi.StreamResponse:
        return wsgi.StreamResponse(idle_sync(request.args["name"]), config=CONFIG)

    @app.get("/resume")
    def resume() -> wsgi.StreamResponse:
        return wsgi.StreamResponse(resumed_ids, config=CONFIG)

    @app.get("/broken")
    def broken() -> wsgi.StreamResponse:
        return wsgi.StreamResponse(broken_sync(), config=CONFIG)

    @app.get("/page")
    def page() -> str:
        return PAGE

    return app


def _django_settings() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="test",
            MIDDLEWARE=[],
        )
        django.setup()


def _django() -> Any:
    _django_settings()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _django_streaming(response: wsgi.StreamResponse, request: Any) -> Any:
    from django.http import StreamingHttpResponse

    status, headers, body = response.start(request.environ)
    return StreamingHttpResponse(body, status=int(status.split()[0]), headers=dict(headers))


def _django_urls() -> list[Any]:
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt

    @csrf_exempt
    def chat(request: Any) -> Any:
        words = json.loads(request.body)["words"]
        return _django_streaming(wsgi.StreamResponse(chat_sync(words), config=CONFIG), request)

    def idle(request: Any) -> Any:
        return _django_streaming(
            wsgi.StreamResponse(idle_sync(request.GET["name"]), config=CONFIG), request
        )

    def resume(request: Any) -> Any:
        return _django_streaming(wsgi.StreamResponse(resumed_ids, config=CONFIG), request)

    def broken(request: Any) -> Any:
        return _django_streaming(wsgi.StreamResponse(broken_sync(), config=CONFIG), request)

    async def hello(request: Any) -> Any:
        from django.http import HttpResponse

        return HttpResponse("a Django view")

    return [
        path("chat", chat), path("idle", idle), path("resume", resume), path("broken", broken),
        path("hello", hello),
    ]


def build(name: str) -> Any:
    """The app called ``name`` (hypercorn's target ``response_apps:build('starlette_app')``)."""
    return __getattr__(name)


def __getattr__(name: str) -> Any:
    """Build an app only when a server asks for it (each framework is optional)."""
    builders = {
        "fastapi_app": _fastapi,
        "starlette_app": _starlette,
        "litestar_app": _litestar,
        "quart_app": _quart,
        "django_asgi_app": _django_asgi,
        "flask_app": _flask,
        "django_app": _django,
        "urlpatterns": _django_urls,
    }
    if name in builders:
        value = builders[name]()
        globals()[name] = value
        return value
    raise AttributeError(name)
