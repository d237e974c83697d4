"""The per-request StreamResponse (ASGI and WSGI) under real servers nobody here wrote.

Servers, each a subprocess on a free loopback port: uvicorn with FastAPI, hypercorn with
Starlette over HTTP/1.1 and with FastAPI over HTTP/2 (h2c with prior knowledge, and over TLS
with a trustme certificate, negotiated by ALPN), uvicorn with Litestar, with Quart and with
Django's ASGI handler, gunicorn's ``gthread`` worker with Flask and with Django. The
applications are in ``response_apps.py``. Clients: httpx with httpx-sse, and sse_core's own
blocking-socket ``EventSource``. Every test runs against every server; without the peers
extra (or a framework) a server's tests skip, saying which.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sse_core import ClientConfig
from tests._processes import stop

httpx = pytest.importorskip("httpx", reason="httpx is in the peers extra")
httpx_sse = pytest.importorskip("httpx_sse", reason="httpx-sse is in the peers extra")

HERE = Path(__file__).resolve().parent
#: Seconds any one wait may take; only a failure ever waits this long.
TIMEOUT = 30.0

#: id: (framework module, server, app, is HTTP/2); with "tls" in the id, HTTPS (trustme).
SERVERS = {
    "uvicorn-fastapi": ("fastapi", "uvicorn", "fastapi_app", False),
    "hypercorn-starlette": ("starlette", "hypercorn", "starlette_app", False),
    "uvicorn-litestar": ("litestar", "uvicorn", "litestar_app", False),
    "uvicorn-quart": ("quart", "uvicorn", "quart_app", False),
    "uvicorn-django-asgi": ("django", "uvicorn", "django_asgi_app", False),
    "hypercorn-h2c-fastapi": ("fastapi", "hypercorn", "fastapi_app", True),
    "hypercorn-h2-tls-fastapi": ("fastapi", "hypercorn", "fastapi_app", True),
    "gunicorn-flask": ("flask", "gunicorn", "flask_app", False),
    "gunicorn-django": ("django", "gunicorn", "django_app", False),
}

_WSGI = {"gunicorn-flask", "gunicorn-django"}
_HTTP2 = {"hypercorn-h2c-fastapi", "hypercorn-h2-tls-fastapi"}
# The stream routes are ASGI endpoints in front of the framework's application (Quart's and
# Django's views cannot hand a request's ASGI send to a response).
_MOUNTED = {"uvicorn-quart", "uvicorn-django-asgi"}
# Combinations that mean nothing (tests/conftest.py leaves them out): send_timeout belongs to
# the ASGI response and the raw client speaks plain HTTP/1.1 (no TLS); sse_core's socket
# client speaks HTTP/1.1 only; the browser runs against one ASGI and one WSGI server.
NOT_APPLICABLE = {
    "test_a_client_that_stops_reading_is_let_go_after_send_timeout": {
        "served": _WSGI | {"hypercorn-h2-tls-fastapi"}
    },
    "test_sse_cores_own_client_resumes_with_the_last_id": {"served": _HTTP2},
    "test_chromium_eventsource_resumes_with_the_last_event_id": {
        "served": set(SERVERS) - {"uvicorn-fastapi", "gunicorn-flask"}
    },
    "test_the_frameworks_own_views_answer_beside_the_mounted_streams": {
        "served": set(SERVERS) - _MOUNTED
    },
}


def dispatched(source: Any) -> Iterator[Any]:
    """httpx-sse's events, without the empty one it dispatches for a ``retry:``-only block
    (a known deviation from WHATWG, which dispatches nothing for an empty data buffer)."""
    for sse in source.iter_sse():
        if sse.data or sse.event != "message" or sse.retry is None:
            yield sse


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(server: str, app: str, port: int, tls: list[str]) -> list[str]:
    target = f"response_apps:{app}"
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1",
                "--port", str(port), "--log-level", "warning"]
    if server == "hypercorn":
        # hypercorn evaluates the target in the module's namespace: call the builder.
        target = f"response_apps:build({app!r})"
        return [sys.executable, "-m", "hypercorn", target, "--bind", f"127.0.0.1:{port}", *tls]
    return [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--threads", "8",
            "--bind", f"127.0.0.1:{port}", target]


@dataclasses.dataclass(frozen=True)
class Served:
    """A running server: its base URL, HTTP version and the generators' ``finally`` marks."""

    name: str
    url: str
    is_http2: bool
    is_wsgi: bool
    marks: Path
    verify: Any = True  # httpx's verify: an SSL context trusting the test CA for TLS
    log: Path | None = None  # what the server wrote to stdout and stderr

    def client(self, **kwargs: Any) -> Any:
        """An httpx client speaking the server's HTTP version."""
        if self.is_http2:
            kwargs.update(http1=False, http2=True)
        return httpx.Client(base_url=self.url, timeout=TIMEOUT, verify=self.verify, **kwargs)

    def wait_for_mark(self, name: str) -> float:
        """When (monotonic, in the server) the generator named ``name`` ran its finally."""
        deadline = time.monotonic() + TIMEOUT
        path = self.marks / name
        while True:
            # Absent, or seen between its creation and its write (empty): look again.
            with contextlib.suppress(FileNotFoundError, ValueError):
                return float(path.read_text())
            if time.monotonic() > deadline:
                raise AssertionError(f"the generator {name!r} never ran its finally")
            time.sleep(0.05)


def wait_for_port(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Wait until the server ``process`` accepts connections on ``port``.

    Raises:
        AssertionError: it exited, or did not listen within ``TIMEOUT`` (with its log).
    """
    deadline = time.monotonic() + TIMEOUT
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{process.args!r} did not start:\n{log.read_text()}")
        time.sleep(0.1)


@pytest.fixture(scope="module", params=list(SERVERS), ids=list(SERVERS))
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """One server process for the module's tests, stopped by PID afterwards."""
    framework, server, app, is_http2 = SERVERS[request.param]
    pytest.importorskip(framework, reason=f"{framework} is in the peers extra")
    pytest.importorskip(server, reason=f"{server} is in the peers extra")
    if is_http2:
        pytest.importorskip("h2", reason="h2 (httpx[http2]) is in the peers extra")
    marks = tmp_path_factory.mktemp("marks")
    port = _free_port()
    tls: list[str] = []
    verify: Any = True
    scheme = "http"
    if "tls" in request.param:
        trustme = pytest.importorskip("trustme", reason="trustme is in the peers extra")
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        certs = tmp_path_factory.mktemp("tls")
        cert.private_key_pem.write_to_path(str(certs / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(certs / "cert.pem"))
        tls = ["--certfile", str(certs / "cert.pem"), "--keyfile", str(certs / "key.pem")]
        verify = ssl.create_default_context()
        ca.configure_trust(verify)
        scheme = "https"
    env = {**os.environ, "PYTHONPATH": str(HERE), "SSE_TEST_MARKS": str(marks)}
    log = tmp_path_factory.mktemp("log") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            _command(server, app, port, tls), env=env, stdout=out, stderr=out
        )
    try:
        wait_for_port(process, port, log)
        yield Served(
            request.param, f"{scheme}://127.0.0.1:{port}",
            is_http2=is_http2, is_wsgi=server == "gunicorn", marks=marks, verify=verify,
            log=log,
        )
    finally:
        stop(process, TIMEOUT)


def test_post_with_a_json_body_streams_each_word_then_done(served: Served) -> None:
    """A POST with a JSON body gets one event per word and the [DONE] event, read by
    httpx-sse, behind the session's proxy-safe head."""
    with served.client() as client, httpx_sse.connect_sse(
        client, "POST", "/chat", json={"words": ["Hello", ", ", "wörld"]}
    ) as source:
        assert source.response.status_code == 200
        headers = source.response.headers
        assert headers["content-type"] == "text/event-stream; charset=utf-8"
        assert headers["cache-control"] == "no-cache, no-transform"
        assert headers["x-accel-buffering"] == "no"
        if served.is_http2:
            assert source.response.http_version == "HTTP/2"
        seen = [(sse.event, sse.data) for sse in dispatched(source)]
    assert seen == [
        ("message", '{"delta": "Hello"}'),
        ("message", '{"delta": ", "}'),
        ("message", '{"delta": "w\\u00f6rld"}'),
        ("done", "[DONE]"),
    ]


def test_heartbeats_arrive_while_the_generator_is_idle(served: Served) -> None:
    """While the generator waits 1.5 s between its events, heartbeat comments (every 0.2 s)
    keep the connection busy; the second event still arrives."""
    lines = []
    with served.client() as client, client.stream("GET", "/idle?name=heartbeat") as response:
        for line in response.iter_lines():
            lines.append(line)
            if line == "data: second":
                break
    between = lines[lines.index("data: first") : lines.index("data: second")]
    # 1.5 s of silence at 0.2 s gives 7; a loaded machine may give fewer, never 0 or 1.
    assert between.count(":") >= 2, lines


def test_gzip_when_the_client_asks(served: Served) -> None:
    """Accept-Encoding: gzip gets a gzip body (with Vary); without it, plain text."""
    with served.client() as client:
        response = client.post(
            "/chat", json={"words": ["x"]}, headers={"accept-encoding": "gzip"}
        )
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["vary"] == "Accept-Encoding"
        assert "data: [DONE]" in response.text  # httpx decoded the gzip
        plain = client.post("/chat", json={"words": ["x"]}, headers={"accept-encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.text == response.text


def leave_after_the_first_event(served: Served, path: str) -> float:
    """GET ``path``, read up to the event ``first`` and leave; when it stopped reading."""
    with served.client() as client, client.stream("GET", path) as response:
        for line in response.iter_lines():
            if line == "data: first":
                break
        left = time.monotonic()
    return left


def test_a_client_that_goes_ends_the_generator(served: Served) -> None:
    """The client leaves after the first event; the generator's finally runs at once (ASGI:
    its sleep is cancelled), or when it next yields (WSGI: a failed heartbeat write closed the
    body, and the generator's thread is told to stop -- unstopped, it would go on queueing
    events nobody takes, 64 of them 1.5 s apart, far past this test's wait)."""
    left = leave_after_the_first_event(served, "/idle?name=gone")
    finished = served.wait_for_mark("gone")
    # Both clocks are CLOCK_MONOTONIC of the same machine.
    assert finished - left < 10.0
    if not served.is_wsgi:
        # Cancelled at once, not after the 1.5 s sleep: wide margin for a loaded machine.
        assert finished - left < 1.4, finished - left


def test_a_client_that_stops_reading_is_let_go_after_send_timeout(served: Served) -> None:
    """A client that sends its request and then reads nothing: once the server's buffers
    are full its send waits, and after send_timeout (1 s; checked every 0.5 s) the response
    lets go and the generator's finally runs -- the real server holds ``send`` back."""
    host, port = served.url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.sendall(b"GET /flood?name=stalled HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        finished = served.wait_for_mark("stalled")
    # The buffers fill in well under a second on loopback; 1 to 1.5 s of waiting after.
    assert 1.0 <= finished - started < 15.0, finished - started


def test_last_event_id_is_handed_to_the_application(served: Served) -> None:
    """The source is a function of the last event ID: the request's Last-Event-ID header
    reaches it, and the ids it yields go out."""
    with served.client() as client, httpx_sse.connect_sse(
        client, "GET", "/resume", headers={"Last-Event-ID": "41"}
    ) as source:
        seen = [(sse.event, sse.data, sse.id) for sse in dispatched(source)]
    assert seen == [
        ("resumed", "after 41", ""),
        ("message", "n42", "42"),
        ("message", "n43", "43"),
        ("message", "n44", "44"),
    ]


def test_sse_cores_own_client_resumes_with_the_last_id(served: Served) -> None:
    """sse_core's blocking-socket EventSource reads the stream, and on the reconnection
    after the stream ends it sends the last id it got, which the application sees."""
    from sse_core.adapters.sync import EventSource

    config = ClientConfig(url=served.url + "/resume")
    got = []
    with EventSource(config) as source:
        for event in source:
            got.append((event.event, event.data))
            if len(got) == 8:
                break
    assert got[:4] == [("resumed", "after nothing"), ("message", "n1"), ("message", "n2"),
                       ("message", "n3")]
    assert got[4:] == [("resumed", "after 3"), ("message", "n4"), ("message", "n5"),
                       ("message", "n6")]


def test_an_error_in_the_generator_ends_the_stream_cleanly(served: Served) -> None:
    """The generator raises after its first event: the client gets that event and a clean
    end of the body (no protocol error from httpx), and nothing after it."""
    with served.client() as client, httpx_sse.connect_sse(client, "GET", "/broken") as source:
        seen = [sse.data for sse in dispatched(source)]
    assert seen == ["before the error"]


def test_events_and_their_json_survive_the_round_trip(served: Served) -> None:
    """The data of each event is the JSON text the application yielded."""
    with served.client() as client, httpx_sse.connect_sse(
        client, "POST", "/chat", json={"words": ['quote " and \\ slash']}
    ) as source:
        first = next(iter(dispatched(source)))
    assert json.loads(first.data) == {"delta": 'quote " and \\ slash'}


def test_the_frameworks_own_views_answer_beside_the_mounted_streams(served: Served) -> None:
    """Where the stream routes are mounted in front of Quart or Django, every other path
    still reaches the framework: its own view answers."""
    with served.client() as client:
        response = client.get("/hello")
    assert response.status_code == 200
    assert response.text in ("a Quart view", "a Django view")


CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=30000",
)


def test_chromium_eventsource_resumes_with_the_last_event_id(
    served: Served, tmp_path: Path
) -> None:
    """Chromium's EventSource reads the resumable route; when the stream ends it reconnects
    with Last-Event-ID, which the application gets and continues from."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("chromium is not installed (CI installs it with .ci/peers.sh)")
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path}", "--dump-dom",
         served.url + "/page"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert "<title>done</title>" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
    match = re.search(r'<pre id="result">(.*?)</pre>', result.stdout, re.DOTALL)
    assert match is not None
    assert json.loads(html.unescape(match.group(1))) == [
        ["resumed", "after nothing", ""],
        ["message", "n1", "1"], ["message", "n2", "2"], ["message", "n3", "3"],
        ["resumed", "after 3", "3"],
        ["message", "n4", "4"], ["message", "n5", "5"], ["message", "n6", "6"],
    ]
