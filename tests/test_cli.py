"""``sse-core listen`` and ``sse-core serve`` end to end, as real subprocesses.

``listen`` runs against sse_core's own asyncio server in the test process (and through the
project's fault proxy); ``serve`` is fed by a pipe and read by the library's own client; and
the two make a shell pipeline through the fault proxy with exactly-once output. No mocks:
every byte crosses a loopback socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from sse_core import ClientState, Event, Parser, ServerConfig
from sse_core._cli import main
from sse_core._cli.listen import format_event
from sse_core._cli.serve import LineSplitter
from sse_core.adapters.asyncio import EventSource, EventStreamServer
from sse_core.state import ReplayConfig, ReplayLog
from sse_core.testing import CutAfter, FaultProxy, Pass

TRANSPORTS = ["sockets", pytest.param("httpx", marks=pytest.mark.skipif(
    importlib.util.find_spec("httpx") is None, reason="httpx is not installed (peers extra)"))]
#: The console script ``pip install`` puts next to the interpreter.
SCRIPT = Path(sys.executable).parent / "sse-core"
#: Generous bound for any one subprocess step on a loaded 2-core machine.
STEP = 60.0


#: Process groups the test started (each subprocess leads its own): killed at the test's end.
STARTED: list[int] = []


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    """A failing test leaves no subprocess behind: each group started is killed after it."""
    yield
    while STARTED:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(STARTED.pop(), signal.SIGKILL)


async def cli(*args: str, stdin: int | None = None) -> asyncio.subprocess.Process:
    """``python -m sse_core ARGS`` as a subprocess with piped stdout and stderr (``listen``
    with ``--timeout 30``, so that a test waiting for events that never come fails soon, with
    what was printed)."""
    if args[0] == "listen":
        args = (*args, "--timeout", "30")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sse_core", *args, stdin=stdin,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )
    STARTED.append(process.pid)
    return process


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    """Wait for the subprocess to exit: its status, stdout and stderr."""
    out, err = await asyncio.wait_for(process.communicate(), STEP)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def wait_for_line(stream: asyncio.StreamReader | None, pattern: str) -> str:
    """Read lines of ``stream`` until one matches ``pattern``; that line."""
    assert stream is not None
    seen = []
    while True:
        line = (await asyncio.wait_for(stream.readline(), STEP)).decode()
        seen.append(line)
        if not line:
            raise AssertionError(f"no line matched {pattern!r}: {seen}")
        if re.search(pattern, line):
            return line


@asynccontextmanager
async def served(log: ReplayLog | None = None) -> AsyncIterator[EventStreamServer]:
    """sse_core's asyncio server on a free port, ``retry: 100`` so reconnections are quick."""
    server = EventStreamServer(log, config=ServerConfig(retry=100, heartbeat_interval=1.0))
    await server.start()
    try:
        yield server
    finally:
        await server.aclose(grace=0.0)


def url_of(address: tuple[str, int]) -> str:
    """The stream URL on ``address``."""
    return f"http://{address[0]}:{address[1]}/events"


EVENTS = [
    Event(data="hello"),
    Event(data='{"price": 42.5}', event="tick"),
    Event(data="two\nlines", event="tick"),
    Event(data="naïve café ☕"),
]


def stamped(ids: list[str]) -> list[Event]:
    """:data:`EVENTS` with the ids the server's log gave them."""
    return [Event(data=e.data, event=e.event, id=i) for e, i in zip(EVENTS, ids, strict=True)]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_listen_prints_events_in_order(transport: str) -> None:
    """Each event is printed once, in order, as ``type id=ID: data``; --max-events ends the
    command with 0, and stderr shows it connecting and streaming."""

    async def run() -> tuple[int, str, str, list[str]]:
        async with served() as server:
            process = await cli("listen", url_of(server.address), "--transport", transport,
                                "--max-events", str(len(EVENTS)))
            await asyncio.wait_for(server.wait_for_subscribers(), STEP)
            ids = [server.publish(event).id for event in EVENTS]
            return (*await finish(process), ids)

    code, out, err, ids = asyncio.run(run())
    assert code == 0, err
    expected = [format_event(event) for event in stamped(ids)]
    assert out == "".join(line + "\n" for line in expected)
    assert f"message id={ids[0]}: hello\n" in out
    assert f"tick id={ids[2]}: two\n" in out  # the second data line is indented under the first
    assert "connecting" in err and "streaming" in err
    assert "Traceback" not in err


def test_listen_json_and_raw() -> None:
    """--json prints one JSON object per event (event, id, last_event_id, data); --raw the
    wire text, which sse_core's parser reads back as the same events."""

    async def run(mode: str) -> tuple[int, str, str, list[str]]:
        async with served() as server:
            process = await cli("listen", url_of(server.address), mode, "--max-events", "4")
            await asyncio.wait_for(server.wait_for_subscribers(), STEP)
            ids = [server.publish(event).id for event in EVENTS]
            return (*await finish(process), ids)

    code, out, err, ids = asyncio.run(run("--json"))
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert records == [
        {"event": e.event, "id": e.id, "last_event_id": e.id, "data": e.data} for e in stamped(ids)
    ]
    code, out, err, ids = asyncio.run(run("--raw"))
    assert code == 0, err
    parsed = Parser().feed(out.encode())
    assert [(e.data, e.event, e.id) for e in parsed] == [
        (e.data, e.event, e.id) for e in stamped(ids)
    ]


async def listen_after(*, kept: int, published: int, start: int) -> tuple[int, str, str,
                                                                          list[str]]:
    """``listen --json --last-event-id`` the id of event ``start`` of ``published`` events
    ``old N`` in a replay log of ``kept`` events, until 3 events: its status, stdout,
    stderr, and the ids published."""
    async with served(ReplayLog(ReplayConfig(max_events=kept))) as server:
        ids = [server.publish(Event(data=f"old {n}")).id for n in range(published)]
        process = await cli("listen", url_of(server.address), "--json",
                            "--last-event-id", ids[start], "--max-events", "3")
        return (*await finish(process), ids)


def test_listen_json_prints_a_too_old_gap_before_the_events_kept() -> None:
    """Resuming from an id the server's replay log (3 events) has evicted: with --json the
    gap is a line of stdout, in its place before the 3 events still kept, as
    ``{"gap": {...}}`` with the reason, the id resumed from and the 6 events the server says
    were lost (events 1-6); the event lines keep their shape, and stderr still says it."""

    code, out, err, ids = asyncio.run(listen_after(kept=3, published=10, start=0))
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert records == [
        {"gap": {"reason": "too_old", "missed": 6, "after_id": ids[0],
                 "first": None, "last": None}},
        *({"event": "message", "id": i, "last_event_id": i, "data": f"old {n}"}
          for n, i in enumerate(ids) if n >= 7),
    ]
    assert f"could not resume from id {ids[0]!r} (too_old); 6 events were lost" in err


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_listen_json_gap_after_a_server_restart_is_in_order(transport: str) -> None:
    """The server restarts on the same port with a new replay log (another epoch, as
    ``serve`` gives each start): listen resumes with an id
    the new server does not know, and stdout has the gap line exactly between the events
    before and after, ``after_id`` the last id printed."""

    async def run() -> tuple[int, list[str], str, list[str]]:
        first = EventStreamServer(ReplayLog(ReplayConfig(max_events=100, epoch="one")),
                                  config=ServerConfig(retry=100))
        await first.start()
        host, port = first.address
        process = await cli("listen", url_of((host, port)), "--json", "--max-events", "4",
                            "--transport", transport)
        assert process.stdout is not None
        try:
            await asyncio.wait_for(first.wait_for_subscribers(), STEP)
            ids = [first.publish(Event(data=f"before {n}")).id for n in range(2)]
            lines = [await asyncio.wait_for(process.stdout.readline(), STEP) for _ in ids]
        finally:
            await first.aclose(grace=0.0)
        second = EventStreamServer(ReplayLog(ReplayConfig(max_events=100, epoch="two")),
                                   config=ServerConfig(retry=100))
        await second.start(host, port)
        try:
            await asyncio.wait_for(second.wait_for_subscribers(), STEP)
            ids += [second.publish(Event(data=f"after {n}")).id for n in range(2)]
            code, out, err = await finish(process)
        finally:
            await second.aclose(grace=0.0)
        return code, [line.decode() for line in lines] + out.splitlines(keepends=True), err, ids

    code, lines, err, ids = asyncio.run(run())
    assert code == 0, err
    records = [json.loads(line) for line in lines]
    events = [{"event": "message", "id": i, "last_event_id": i, "data": data}
              for i, data in zip(ids, ["before 0", "before 1", "after 0", "after 1"],
                                 strict=True)]
    gap = {"gap": {"reason": "unknown", "missed": None, "after_id": ids[1],
                   "first": None, "last": None}}
    assert records == [*events[:2], gap, *events[2:]]
    assert f"could not resume from id {ids[1]!r} (unknown)" in err


async def refusing_server(status: str, body: bytes) -> asyncio.Server:
    """A server that answers every request with ``status`` and a text body."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_listen_refused_exits_1_with_the_status(transport: str) -> None:
    """A 401 ends the command with 1, showing the status and the start of the body, and no
    traceback."""

    async def run() -> tuple[int, str, str]:
        server = await refusing_server("401 Unauthorized", b"missing bearer token\n")
        async with server:
            port = server.sockets[0].getsockname()[1]
            process = await cli("listen", f"http://127.0.0.1:{port}/", "--transport", transport)
            return await finish(process)

    code, out, err = asyncio.run(run())
    assert code == 1
    assert out == ""
    assert "refused: HTTP 401: 'missing bearer token\\n'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_listen_resumes_after_a_cut_without_printing_twice(transport: str) -> None:
    """The fault proxy cuts the first connection inside the stream: listen reconnects with
    ``Last-Event-ID``, says it resumed from that id, and prints every event exactly once."""
    count = 40

    async def run() -> tuple[int, str, str, list[str], int]:
        log = ReplayLog(ReplayConfig(max_events=1000))
        async with served(log) as server, \
                FaultProxy(server.address, plan=[CutAfter(after_bytes=700)]) as proxy:
            process = await cli("listen", url_of(proxy.address), "--json", "--no-compression",
                                "--transport", transport, "--max-events", str(count))
            await asyncio.wait_for(server.wait_for_subscribers(), STEP)
            ids = []
            for n in range(count):
                ids.append(server.publish(Event(data=f"event {n} " + "x" * 40)).id)
                await asyncio.sleep(0.01)
            result = await finish(process)
            return (*result, ids, proxy.stats.accepted)

    code, out, err, ids, accepted = asyncio.run(run())
    assert code == 0, err
    assert [json.loads(line)["id"] for line in out.splitlines()] == ids
    assert accepted >= 2  # the cut really happened and the client came back
    resumed = re.findall(r"streaming, resumed from id (\S+)", err)
    assert resumed and resumed[0] in ids[:-1]
    assert "reconnecting in " in err


def test_listen_sends_last_event_id() -> None:
    """``--last-event-id`` is sent: the server replays only what followed that id."""

    code, out, err, ids = asyncio.run(listen_after(kept=100, published=5, start=1))
    assert code == 0, err
    assert [json.loads(line)["data"] for line in out.splitlines()] == ["old 2", "old 3", "old 4"]
    assert f"connecting (Last-Event-ID: {ids[1]})" in err
    assert f"streaming, resumed from id {ids[1]}" in err


def test_listen_ctrl_c_exits_130_without_a_traceback() -> None:
    """SIGINT while streaming ends the command with 130 and no traceback."""

    async def run() -> tuple[int, str, str]:
        async with served() as server:
            process = await cli("listen", url_of(server.address))
            await wait_for_line(process.stderr, "streaming")
            process.send_signal(signal.SIGINT)
            return await finish(process)

    code, _, err = asyncio.run(run())
    assert code == 130
    assert "interrupted" in err and "Traceback" not in err


def test_usage_errors_exit_2() -> None:
    """A missing URL, a bad header or no command at all is a usage error: 2."""
    for argv in (["listen"], ["listen", "http://x/", "-H", "no"], ["serve", "--drain", "-1"]):
        result = subprocess.run([sys.executable, "-m", "sse_core", *argv], check=False,
                                capture_output=True, text=True, timeout=STEP)
        assert result.returncode == 2, (argv, result.stderr)
        assert "usage:" in result.stderr
    assert main([]) == 2  # the console script without a command: its help, on stderr
    assert main(["listen", "ftp://example.com/"]) == 2  # a URL the configuration refuses


async def start_serve(*args: str, stdin: int | None = asyncio.subprocess.PIPE
                      ) -> tuple[asyncio.subprocess.Process, tuple[str, int]]:
    """``sse-core serve --port 0 ARGS``; the process and the address it says it serves on."""
    process = await cli("serve", "--port", "0", "--retry", "100", *args, stdin=stdin)
    line = await wait_for_line(process.stderr, r"serving on http://")
    host, port = re.search(r"http://([\d.]+):(\d+)", line).groups()  # type: ignore[union-attr]
    return process, (host, int(port))


def test_serve_gives_each_line_as_an_event_and_ends_at_eof() -> None:
    """Each line written to serve's stdin reaches a client as one event with an id from the
    replay log (blank lines skipped, CRLF taken as a line end); EOF ends the server with 0."""
    lines = ["first line", "second, with ünïcode", "", "third\r"]

    async def run_with_writer() -> tuple[list[Event], int, str]:
        process, address = await start_serve("--event", "log", "--drain", "0.5")
        received: list[Event] = []
        async with EventSource(url_of(address)) as source:
            async def write() -> None:
                assert process.stdin is not None
                # write once the client is streaming (so it is subscribed)
                while source.session.state is not ClientState.STREAMING:
                    await asyncio.sleep(0.01)
                process.stdin.write("\n".join(lines).encode() + b"\n")
                await process.stdin.drain()
                process.stdin.close()

            writer = asyncio.create_task(write())
            async for event in source:
                received.append(event)
                if len(received) == 3:
                    break
            await writer
        code, _, err = await finish(process)
        return received, code, err

    received, code, err = asyncio.run(asyncio.wait_for(run_with_writer(), STEP))
    assert [(e.data, e.event) for e in received] == [
        ("first line", "log"), ("second, with ünïcode", "log"), ("third", "log")
    ]
    ids = [e.id for e in received]
    assert all(ids) and len(set(ids)) == 3
    assert code == 0, err
    assert "end of input after 3 events; serving 0.5 s more" in err


def test_serve_command_output_and_its_failure() -> None:
    """--command's output is served as stdin's would be; a command exiting non-zero makes
    serve exit 1 after its lines were served."""

    async def run(command: str) -> tuple[list[str], int, str]:
        process, address = await start_serve("--command", command, "--wait-for", "1",
                                              "--drain", "0.5", stdin=subprocess.DEVNULL)
        received: list[str] = []
        async with EventSource(url_of(address)) as source:
            async for event in source:
                received.append(event.data)
                if len(received) == 2:
                    break
        code, _, err = await finish(process)
        return received, code, err

    received, code, err = asyncio.run(run("printf 'alpha\\nbeta\\n'"))
    assert (received, code) == (["alpha", "beta"], 0), err
    received, code, err = asyncio.run(run("printf 'alpha\\nbeta\\n'; exit 3"))
    assert (received, code) == (["alpha", "beta"], 1)
    assert "the command exited with status 3" in err


def test_serve_ctrl_c_exits_130() -> None:
    """SIGINT while serving (stdin still open) ends serve with 130 and no traceback."""

    async def run() -> tuple[int, str, str]:
        process, _ = await start_serve()
        process.send_signal(signal.SIGINT)
        return await finish(process)

    code, _, err = asyncio.run(run())
    assert code == 130
    assert "Traceback" not in err


def test_console_script_is_installed() -> None:
    """``pip install`` puts an ``sse-core`` script next to the interpreter; it runs the
    command line."""
    assert SCRIPT.exists(), "reinstall: pip install -e . (./run.sh does it when pyproject changes)"
    result = subprocess.run([str(SCRIPT), "listen", "--help"], capture_output=True, text=True,
                            timeout=STEP, check=False)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: sse-core listen")


def test_pipeline_through_the_fault_proxy_is_exactly_once() -> None:
    """``printf lines | sse-core serve`` <- fault proxy (cuts the first connection, resets
    the second) <- ``sse-core listen --json``: every line once, in order, and both exit 0."""
    lines = [f"line {n}: {'payload ' * (n % 7)}é" for n in range(300)]

    async def run() -> tuple[list[str], int, str, int, str, int]:
        script = SCRIPT if SCRIPT.exists() else None
        serve_argv = ([str(script)] if script else [sys.executable, "-m", "sse_core"]) + [
            "serve", "--port", "0", "--retry", "100", "--wait-for", "1", "--drain", "5"]
        feed = "printf '%s\\n' " + " ".join(f"'{line}'" for line in lines)
        server = await asyncio.create_subprocess_shell(
            f"{feed} | {' '.join(serve_argv)}", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )
        STARTED.append(server.pid)
        line = await wait_for_line(server.stderr, r"serving on http://")
        port = int(re.search(r":(\d+)/", line).group(1))  # type: ignore[union-attr]
        async with FaultProxy(("127.0.0.1", port),
                              plan=[CutAfter(after_bytes=3000), Pass()]) as proxy:
            listener = await cli("listen", url_of(proxy.address), "--json",
                                 "--max-events", str(len(lines)))
            code, out, err = await finish(listener)
            accepted = proxy.stats.accepted
        server_code, _, server_err = await finish(server)
        data = [json.loads(record)["data"] for record in out.splitlines()]
        return data, code, err, server_code, server_err, accepted

    data, code, err, server_code, server_err, accepted = asyncio.run(run())
    assert code == 0, err
    assert data == lines
    assert accepted >= 2, err  # the cut hit: the listener came back through the proxy
    assert "resumed from id" in err
    assert server_code == 0, server_err
    assert f"end of input after {len(lines)} events" in server_err


@pytest.mark.parametrize("size", [1, 2, 3, 7, 4096])
def test_line_splitter_any_chunking(size: int) -> None:
    """Lines come out whole however the bytes are split (inside UTF-8 characters too):
    LF and CRLF end lines, invalid UTF-8 becomes U+FFFD, the last unterminated line comes
    out at the end, and a line over the limit is cut into pieces of the limit."""
    data = "ä€😀 one\r\ntwo\n\nthree😀😀😀😀😀 end".encode() + b"\xff\nlast"
    splitter = LineSplitter(max_length=12)
    lines: list[str] = []
    for start in range(0, len(data), size):
        lines += splitter.feed(data[start : start + size])
    lines += splitter.feed(b"")
    assert lines == ["ä€😀 one", "two", "", "three😀😀😀😀😀 e", "nd\ufffd", "last"]
    assert "".join(lines[3:5]) == "three😀😀😀😀😀 end\ufffd"


def test_line_splitter_holds_at_most_the_limit() -> None:
    """A line with no end in sight is handed out in pieces: the text held back stays under
    the limit."""
    splitter = LineSplitter(max_length=100)
    pieces = splitter.feed(b"x" * 1050)
    assert pieces == ["x" * 100] * 10
    assert splitter.feed(b"") == ["x" * 50]


def test_python_m_sse_core_keeps_its_own_commands() -> None:
    """``python -m sse_core`` without a command still prints the install report, and its
    help names the command-line commands."""
    env = {**os.environ, "COLUMNS": "200"}
    report = subprocess.run([sys.executable, "-m", "sse_core"], capture_output=True,
                            text=True, timeout=STEP, check=False, env=env)
    assert report.returncode == 0 and report.stdout.startswith("sse_core ")
    helped = subprocess.run([sys.executable, "-m", "sse_core", "--help"], capture_output=True,
                            text=True, timeout=STEP, check=False, env=env)
    assert "listen, serve" in helped.stdout


async def raw_get(address: tuple[str, int], *headers: str, until: bytes) -> bytes:
    """A raw HTTP/1.1 GET of the stream: what arrived until ``until`` was seen."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(("GET /events HTTP/1.1\r\nHost: x\r\n" + "".join(h + "\r\n" for h in headers)
                  + "\r\n").encode())
    seen = b""
    while until not in seen:
        chunk = await asyncio.wait_for(reader.read(65536), STEP)
        assert chunk, seen
        seen += chunk
    writer.close()
    return seen


def test_serve_sends_retry_heartbeats_and_gzip() -> None:
    """``--retry`` is sent first, ``--heartbeat`` comments fill silence, ``-H`` fields are
    in the head, and a client that accepts gzip gets it (one that does not, plain text)."""

    async def run() -> tuple[bytes, bytes]:
        process, address = await start_serve("--heartbeat", "0.2",
                                              "-H", "Access-Control-Allow-Origin: *")
        plain = await raw_get(address, until=b"\n:\n\n")
        zipped = await raw_get(address, "Accept-Encoding: gzip", until=b"\r\n\r\n")
        process.send_signal(signal.SIGINT)
        await finish(process)
        return plain, zipped

    plain, zipped = asyncio.run(run())
    head, _, body = plain.partition(b"\r\n\r\n")
    assert b"access-control-allow-origin: *" in head.lower()
    assert b"content-encoding" not in head.lower()
    assert b"retry: 100\n" in body
    assert b"\n:\n\n" in body  # a heartbeat comment, after the first blocks
    assert b"content-encoding: gzip" in zipped.lower()


def test_listen_gives_up_after_max_attempts() -> None:
    """With nothing listening, ``--max-attempts 1`` gives up after one reconnection: exit 1,
    saying so."""
    import socket

    with socket.socket() as placeholder:  # a port nobody listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    result = subprocess.run(
        [sys.executable, "-m", "sse_core", "listen", f"http://127.0.0.1:{port}/",
         "--max-attempts", "1", "--transport", "sockets"],
        capture_output=True, text=True, timeout=STEP, check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "reconnecting in " in result.stderr
    assert "gave up (max_attempts) after 1 attempts" in result.stderr
    assert result.stderr.endswith("failed (gave up)\n") and "Traceback" not in result.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_listen_over_tls_with_cacert_or_insecure(tmp_path: Path, transport: str) -> None:
    """Over TLS with a private CA: ``--cacert`` trusts it, ``--insecure`` skips the check,
    and without either the certificate is refused (given up after ``--max-attempts``)."""
    trustme = pytest.importorskip("trustme")
    import ssl

    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))

    async def run(*options: str) -> tuple[int, str, str]:
        server = EventStreamServer(config=ServerConfig(retry=100))
        await server.start(ssl_context=context)
        try:
            host, port = server.address
            process = await cli("listen", f"https://{host}:{port}/events", "--max-events", "1",
                                "--max-attempts", "1", "--transport", transport, *options)

            async def publish() -> None:
                await server.wait_for_subscribers()
                server.publish(Event(data="over tls"))

            publisher = asyncio.create_task(publish())
            result = await finish(process)
            publisher.cancel()
            return result
        finally:
            await server.aclose(grace=0.0)

    for options in (["--cacert", str(ca_file)], ["--insecure"]):
        code, out, err = asyncio.run(run(*options))
        assert (code, out.split(": ", 1)[-1]) == (0, "over tls\n"), err
    code, out, err = asyncio.run(run())
    assert (code, out) == (1, ""), err
    assert "CERTIFICATE_VERIFY_FAILED" in err


def test_options_the_installed_packages_cannot_honour_are_usage_errors() -> None:
    """``--http2`` over the socket adapter is refused before anything is sent: 2."""
    assert main(["listen", "http://127.0.0.1:1/", "--http2", "--transport", "sockets"]) == 2


def test_without_the_http_extra_the_commands_say_what_to_install() -> None:
    """With neither h11 nor httpx importable (a bare ``pip install sse-core``), ``--help``
    still works and ``listen`` / ``serve`` / ``check`` exit 2 naming the extra to install."""
    code = (
        "import sys; sys.modules['h11'] = sys.modules['httpx'] = None\n"
        "from sse_core._cli import main\n"
        "print(main(['listen', 'http://127.0.0.1:1/']), main(['serve', '--port', '0']),\n"
        "      main(['check', 'http://127.0.0.1:1/']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=STEP, check=False)
    assert result.stdout == "2 2 2\n", result.stderr
    assert result.stderr.count("pip install 'sse-core[http]'") == 3
