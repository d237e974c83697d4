"""sse_core's aiohttp ``StreamResponse`` under a real ``aiohttp.web`` server.

The server is ``aiohttp_app.py`` run by ``web.run_app`` in a subprocess on a free loopback
port, twice: as aiohttp runs by default (handlers are not cancelled when their client goes;
the response looks at the connection), and with ``handler_cancellation=True``. It serves the
routes and generators of ``response_apps.py``, so the tests of the ASGI and WSGI responses
under their servers run here as they are, imported from ``test_response_servers.py`` (this
module's ``served`` fixture stands in for theirs): the head, the events in order read by
httpx-sse and by sse_core's own blocking client, heartbeats, gzip, a client that goes, one
that stops reading, ``Last-Event-ID``, a generator that raises, and Chromium's EventSource.
Below them, what is aiohttp's own: sse_core's asyncio client, a ``ReplayLog`` resume, a
middleware's header and compression, and the error logged by aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sse_core import ClientConfig
from tests._processes import stop

pytest.importorskip("aiohttp", reason="aiohttp is in the peers extra")

# The shared tests, run here against aiohttp (pytest collects them in this module too).
from tests.adapters.test_response_servers import (
    TIMEOUT,
    Served,
    _free_port,
    dispatched,
    httpx_sse,
    leave_after_the_first_event,
    test_a_client_that_goes_ends_the_generator,
    test_a_client_that_stops_reading_is_let_go_after_send_timeout,
    test_an_error_in_the_generator_ends_the_stream_cleanly,
    test_chromium_eventsource_resumes_with_the_last_event_id,
    test_events_and_their_json_survive_the_round_trip,
    test_gzip_when_the_client_asks,
    test_heartbeats_arrive_while_the_generator_is_idle,
    test_last_event_id_is_handed_to_the_application,
    test_post_with_a_json_body_streams_each_word_then_done,
    test_sse_cores_own_client_resumes_with_the_last_id,
    wait_for_port,
)

__all__ = [
    "test_a_client_that_goes_ends_the_generator",
    "test_a_client_that_stops_reading_is_let_go_after_send_timeout",
    "test_an_error_in_the_generator_ends_the_stream_cleanly",
    "test_chromium_eventsource_resumes_with_the_last_event_id",
    "test_events_and_their_json_survive_the_round_trip",
    "test_gzip_when_the_client_asks",
    "test_heartbeats_arrive_while_the_generator_is_idle",
    "test_last_event_id_is_handed_to_the_application",
    "test_post_with_a_json_body_streams_each_word_then_done",
    "test_sse_cores_own_client_resumes_with_the_last_id",
]

HERE = Path(__file__).resolve().parent
SERVERS = {"aiohttp": [], "aiohttp-handler-cancellation": ["--handler-cancellation"]}
# Chromium runs against one of the two (the response is the same).
NOT_APPLICABLE = {
    "test_chromium_eventsource_resumes_with_the_last_event_id": {
        "served": {"aiohttp-handler-cancellation"}
    },
}


@pytest.fixture(scope="module", params=list(SERVERS), ids=list(SERVERS))
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """``aiohttp_app.py`` under ``web.run_app`` for the module's tests, stopped by PID."""
    marks = tmp_path_factory.mktemp("marks")
    log = tmp_path_factory.mktemp("log") / "server.log"
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(HERE), "SSE_TEST_MARKS": str(marks)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "aiohttp_app.py"), str(port), *SERVERS[request.param]],
            env=env, stdout=out, stderr=out,
        )
    try:
        wait_for_port(process, port, log)
        yield Served(
            request.param, f"http://127.0.0.1:{port}", is_http2=False, is_wsgi=False,
            marks=marks, log=log,
        )
    finally:
        stop(process, TIMEOUT)


def test_the_head_and_a_middlewares_header_and_compression(served: Served) -> None:
    """The session's head goes out with what a middleware added (``X-Request-Id``); the
    middleware's ``enable_compression()`` leaves the stream as the session wrote it: plain
    without ``Accept-Encoding: gzip``, gzip once with it (httpx decodes it to the same
    events; compressed twice, it would not)."""
    with served.client() as client:
        plain = client.get("/resume", headers={"accept-encoding": "identity"})
        gzipped = client.get("/resume", headers={"accept-encoding": "gzip"})
    assert plain.headers["x-request-id"] == "r-1"
    assert plain.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert plain.headers["cache-control"] == "no-cache, no-transform"
    assert "content-encoding" not in plain.headers
    assert plain.text.startswith("retry: 1500\n\nevent: resumed\ndata: after nothing\n\n")
    assert gzipped.headers["content-encoding"] == "gzip"
    assert gzipped.text == plain.text


def test_sse_cores_asyncio_client_reads_and_resumes(served: Served) -> None:
    """sse_core's asyncio EventSource reads the resumable route over two connections: the
    second request carries the last id of the first, which the application continues from."""
    from sse_core.adapters.asyncio import EventSource

    async def main() -> list[tuple[str, str, str | None]]:
        got: list[tuple[str, str, str | None]] = []
        async with EventSource(ClientConfig(url=served.url + "/resume")) as source:
            async for event in source:
                got.append((event.event, event.data, event.id))
                if len(got) == 6:
                    break
        return got

    got = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert got == [
        ("resumed", "after nothing", None), ("message", "n1", "1"), ("message", "n2", "2"),
        ("message", "n3", "3"), ("resumed", "after 3", None), ("message", "n4", "4"),
    ]


def test_a_client_that_goes_is_seen_without_a_write(served: Served) -> None:
    """With no heartbeat to fail, the client's going is still seen while the generator
    waits (by the watch on the connection, or aiohttp's cancellation): its ``finally`` runs
    long before its ten-second wait would have ended."""
    left = leave_after_the_first_event(served, "/quiet?name=quiet")
    finished = served.wait_for_mark("quiet")
    # The watch looks every 0.5 s: a wide margin for a loaded machine, far below 10 s.
    assert finished - left < 5.0, finished - left


def test_a_replay_log_serves_what_the_client_missed(served: Served) -> None:
    """The job route appends its events to a shared ``ReplayLog``; a client that resumes
    from an older id gets the events after it from the log, then the new ones (which the
    log numbers on), and the application gets that id."""
    with served.client() as client:
        with httpx_sse.connect_sse(client, "GET", "/job") as source:
            first = [(sse.data, sse.id) for sse in dispatched(source) if sse.data]
        assert [data for data, _ in first] == ["step a after nothing", "step b after nothing"]
        missed_from = first[0][1]
        with httpx_sse.connect_sse(
            client, "GET", "/job", headers={"Last-Event-ID": missed_from}
        ) as source:
            resumed = [(sse.data, sse.id) for sse in dispatched(source) if sse.data]
    assert resumed[0] == first[1]  # replayed from the log, with its id
    assert [data for data, _ in resumed[1:]] == [
        f"step a after {missed_from}", f"step b after {missed_from}",
    ]
    ids = [int(event_id) for _, event_id in first + resumed[1:]]
    assert ids == sorted(ids) and len(set(ids)) == 4


def test_an_error_in_the_generator_is_logged_by_aiohttp(served: Served) -> None:
    """After the clean end of the stream, the generator's exception reaches aiohttp, which
    logs it as any handler's ("Unhandled exception", with the traceback)."""
    assert served.log is not None
    with served.client() as client:
        assert client.get("/broken").text.endswith("data: before the error\n\n")
    deadline = time.monotonic() + TIMEOUT
    while "RuntimeError: the model crashed" not in served.log.read_text():
        assert time.monotonic() < deadline, served.log.read_text()
        time.sleep(0.05)
    assert "Unhandled exception" in served.log.read_text()


@contextlib.contextmanager
def serving_in_this_process(monkeypatch: pytest.MonkeyPatch, marks: Path) -> Iterator[int]:
    """``aiohttp_app.app()`` under aiohttp's ``AppRunner`` and ``TCPSite`` on a thread of
    this process (so a test can patch the module under test); yields the port."""
    from aiohttp import web

    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("SSE_TEST_MARKS", str(marks))
    import aiohttp_app

    loop = asyncio.new_event_loop()
    runner = web.AppRunner(aiohttp_app.app())
    loop.run_until_complete(runner.setup())
    port = _free_port()
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def test_a_client_let_go_after_send_timeout_has_its_connection_reset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A client that stops reading is let go after send_timeout and its connection reset
    at once, even where the kernel has no ``TCP_USER_TIMEOUT`` to drop it (patched out
    here: on Linux it drops the connection at the same moment): what the client can still
    read is only what its own small receive buffer held. Were the connection only closed,
    aiohttp would first flush what it holds for the client (its own buffer alone holds
    over 64 KiB here, then the kernel's), for as long as the client does not read."""
    from sse_core.adapters import _aiohttp_response

    monkeypatch.setattr(_aiohttp_response, "set_send_timeout", lambda sock, timeout: None)
    with serving_in_this_process(monkeypatch, tmp_path) as port, socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /flood?name=reset HTTP/1.1\r\nHost: x\r\n\r\n")
        url = f"http://127.0.0.1:{port}"
        Served("in-process", url, is_http2=False, is_wsgi=False, marks=tmp_path).wait_for_mark(
            "reset"
        )
        time.sleep(0.5)  # the reset follows the generator's close at once
        sock.settimeout(TIMEOUT)
        received = 0
        with pytest.raises(ConnectionResetError):
            while data := sock.recv(65536):
                received += len(data)
    assert received < 65536, received


def test_the_docs_pages_pass_mypy_strict(tmp_path: Path) -> None:
    """Every example of the aiohttp page and of the migration page from aiohttp-sse (the
    program before and after), each page as one module, type-checks with ``mypy --strict``
    as user code: handlers annotated ``-> StreamResponse`` are what aiohttp's router takes."""
    from tests.adapters.test_response_typing import _mypy
    from tests.test_docs_examples import DOCS, code_blocks

    pages = {"aiohttp_page": "adapters/aiohttp.rst", "migration_page": "migrate/aiohttp-sse.rst"}
    result = _mypy(tmp_path, {
        name: "\n".join(source for _, source in code_blocks(DOCS / page))
        for name, page in pages.items()
    })
    assert result.returncode == 0, result.stdout + result.stderr


def test_prepared_in_the_handler_then_returned_and_never_for_a_second_request() -> None:
    """A handler may prepare the response itself (the stream runs there) and return it:
    aiohttp's own prepare then finds it done. The same response returned for a second
    request is refused (LocalProtocolError, which aiohttp logs) before any byte is sent."""
    from aiohttp import ClientError, web
    from aiohttp.test_utils import TestClient, TestServer

    from sse_core import LocalProtocolError
    from sse_core.adapters.aiohttp import StreamResponse

    async def two() -> AsyncIterator[str]:
        yield "one"
        yield "two"

    errors: list[BaseException] = []
    response = StreamResponse(two())

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            await response.prepare(request)
        except LocalProtocolError as error:
            errors.append(error)
            raise
        return response

    async def main() -> tuple[str, bool]:
        app = web.Application()
        app.router.add_get("/s", handler)
        async with TestClient(TestServer(app)) as client:
            first = await (await client.get("/s")).text()
            try:
                second = await client.get("/s")
                is_refused = second.status == 500
            except ClientError:
                is_refused = True
        return first, is_refused

    first, is_refused = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert first == "data: one\n\ndata: two\n\n"
    assert is_refused
    assert len(errors) == 1 and "one request" in str(errors[0])
