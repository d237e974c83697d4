"""``sse-core serve``: serve the lines of stdin (or of a command) as an event stream (floor 4).

The asyncio :class:`~sse_core.adapters.asyncio.EventStreamServer` does the serving: each line
is published once, gets its id from the replay log (so a client that reconnects with
``Last-Event-ID`` gets what it missed), and every client gets heartbeats, ``retry:`` and gzip
as configured. A reader thread reads the input (the event loop never blocks on it) and hands
lines over through a bounded queue, so a fast producer waits for the server instead of
growing memory.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import Event, ServerConfig
from ..state import ReplayConfig, ReplayLog
from ._common import Exit, Status, header, non_negative_float, positive_int

if TYPE_CHECKING:  # the adapters need the http extra: imported only when serving
    from ..adapters import ServerOptions
    from ..adapters.asyncio import EventStreamServer

__all__ = ["DEFAULT_DRAIN", "LineSplitter", "add_parser", "run"]

#: Seconds the server keeps serving after the end of its input, so that connected clients
#: (and those reconnecting) get the last lines.
DEFAULT_DRAIN = 1.0

#: Bytes read from the input at once, and lines handed to the event loop at most in flight.
_READ_SIZE = 64 * 1024
_MAX_QUEUED_BATCHES = 16

_DESCRIPTION = f"""\
Serve each line of stdin (or of --command's output) as an event, to every client that
connects (tail -f app.log | sse-core serve). Each event gets an id from a replay log of
the last --replay events, so a client that reconnects with Last-Event-ID gets the lines it
missed; a new client gets the lines from its arrival on. Blank lines are skipped (an
event with empty data is never dispatched by a browser); a line longer than
--max-line-length characters is cut into several events. The input is read as UTF-8
(invalid bytes become U+FFFD).

At the end of the input the server keeps serving for --drain seconds (default
{DEFAULT_DRAIN:g}), so that clients get the last lines, then ends the streams and exits.

Exit status: 0 at the end of the input; 1 when the port cannot be opened or --command
exits non-zero; 2 for a usage error; 130 on Ctrl-C.
"""


def add_parser(subparsers: Any) -> None:
    """Add ``serve`` and its options to the command line's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve the lines of stdin (or a command's output) as an event stream",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8000,
                        help="the port (default 8000; 0 picks a free one)")
    parser.add_argument("--path", default=None,
                        help="serve only this path (others get 404; default: every path)")
    parser.add_argument("--command", metavar="CMD",
                        help="serve this shell command's output instead of stdin")
    parser.add_argument("--event", metavar="TYPE", help="the event type (default: message)")
    parser.add_argument("--replay", type=positive_int, default=1000, metavar="N",
                        help="keep the last N events (at most 1 MiB) for clients that "
                        "resume (default 1000)")
    parser.add_argument("--heartbeat", type=non_negative_float, default=15.0, metavar="S",
                        help="a comment after S seconds of silence (default 15; 0: none)")
    parser.add_argument("--retry", type=int, metavar="MS",
                        help="the reconnection time sent to clients (retry:), in milliseconds")
    parser.add_argument("--no-compression", action="store_true",
                        help="never gzip (by default a client that accepts gzip gets it)")
    parser.add_argument("-H", "--header", dest="headers", action="append", type=header,
                        default=[], metavar="'NAME: VALUE'",
                        help="a response header field (repeatable; e.g. "
                        "'Access-Control-Allow-Origin: *' for pages of other origins)")
    parser.add_argument("--wait-for", type=positive_int, metavar="N",
                        help="read the input only once N clients are connected")
    parser.add_argument("--drain", type=non_negative_float, default=DEFAULT_DRAIN, metavar="S",
                        help=f"seconds to keep serving after the input ends "
                        f"(default {DEFAULT_DRAIN:g})")
    parser.add_argument("--max-line-length", type=positive_int, default=64 * 1024,
                        metavar="N", help="cut longer lines into events of N characters "
                        "(default 65536)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no status lines on stderr")


def run(args: argparse.Namespace) -> int:
    """Serve as ``args`` say; return the exit status."""
    status = Status(is_quiet=args.quiet)
    try:
        config = ServerConfig(
            heartbeat_interval=args.heartbeat or None,
            retry=args.retry,
            is_compression_enabled=not args.no_compression,
            headers=tuple(args.headers),
        )
        log = ReplayLog(ReplayConfig(max_events=args.replay, epoch=secrets.token_hex(4)))
        from ..adapters import ServerOptions

        options = ServerOptions(path=args.path)
    except ModuleNotFoundError as error:
        print(f"sse-core serve needs the http extra (pip install 'sse-core[http]'): {error}",
              file=sys.stderr)
        return Exit.USAGE
    except ValueError as error:  # InvalidConfigError is one
        print(f"sse-core serve: {error}", file=sys.stderr)
        return Exit.USAGE
    process: subprocess.Popen[bytes] | None = None
    try:
        if args.command is not None:
            process = subprocess.Popen(
                args.command, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
            )
        return asyncio.run(_serve(args, config, options, log, process, status))
    except KeyboardInterrupt:
        status("interrupted")
        return Exit.INTERRUPTED
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait()


async def _serve(
    args: argparse.Namespace,
    config: ServerConfig,
    options: ServerOptions,
    log: ReplayLog,
    process: subprocess.Popen[bytes] | None,
    status: Status,
) -> int:
    """Serve until the input ends (and the drain passed); the exit status."""
    from ..adapters.asyncio import EventStreamServer

    server = EventStreamServer(log, config=config, options=options)
    try:
        await server.start(args.host, args.port)
    except OSError as error:
        status(f"cannot listen on {args.host}:{args.port}: {error}")
        return Exit.FAILED
    try:
        host, port = server.address
        where = args.path if args.path is not None else "/ (every path)"
        status(f"serving on http://{host}:{port}{where}")
        if args.wait_for is not None:
            status(f"waiting for {args.wait_for} client(s) before reading the input")
            await server.wait_for_subscribers(args.wait_for)
        count = await _publish_input(server, args, process)
        status(f"end of input after {count} events; serving {args.drain:g} s more")
        await asyncio.sleep(args.drain)
    finally:
        await server.aclose(grace=1.0)
    if process is not None:
        code = await asyncio.get_running_loop().run_in_executor(None, process.wait)
        if code != 0:
            status(f"the command exited with status {code}")
            return Exit.FAILED
    status("done")
    return Exit.OK


async def _publish_input(
    server: EventStreamServer, args: argparse.Namespace, process: subprocess.Popen[bytes] | None
) -> int:
    """Publish every line of the input; the number of events published."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[list[str] | None] = asyncio.Queue(maxsize=_MAX_QUEUED_BATCHES)

    def put(batch: list[str] | None) -> bool:
        """From the reader thread: queue a batch, waiting while the queue is full; whether
        the server still takes them."""
        try:
            asyncio.run_coroutine_threadsafe(queue.put(batch), loop).result()
        except (RuntimeError, asyncio.CancelledError):  # the loop is gone: Ctrl-C
            return False
        return True

    if process is not None:
        assert process.stdout is not None
        fd = process.stdout.fileno()
    else:
        fd = sys.stdin.fileno()
    reader = threading.Thread(
        target=_read_lines, args=(fd, LineSplitter(args.max_line_length), put),
        name="sse-core serve input", daemon=True,
    )
    reader.start()
    count = 0
    kind = {} if args.event is None else {"event": args.event}
    while (batch := await queue.get()) is not None:
        for line in batch:
            if line:
                server.publish(Event(data=line, **kind))
                count += 1
    return count


def _read_lines(fd: int, lines: LineSplitter, put: Callable[[list[str] | None], bool]) -> None:
    """The reader thread: read ``fd`` to its end, handing each read's lines to ``put``,
    then ``None``. Unbuffered reads of the raw descriptor: no lock of ``sys.stdin`` is held
    when the interpreter exits during a read (Ctrl-C)."""
    while True:
        try:
            data = os.read(fd, _READ_SIZE)
        except OSError:
            data = b""
        batch = lines.feed(data)
        if batch and not put(batch):
            return
        if not data:
            put(None)
            return


class LineSplitter:
    """Bytes in, whole lines out: UTF-8 with invalid bytes replaced, LF or CRLF line ends,
    lines longer than ``max_length`` characters cut into pieces of that length (so the
    text held back never exceeds it)."""

    def __init__(self, max_length: int) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""
        self._max_length = max_length

    def feed(self, data: bytes) -> list[str]:
        """The lines completed by ``data``; ``b""`` ends the input (the last line, if
        unterminated, comes out)."""
        text = self._pending + self._decoder.decode(data, final=not data)
        lines = text.split("\n")
        pending = lines.pop()
        while len(pending) > self._max_length:
            lines.append(pending[: self._max_length])
            pending = pending[self._max_length :]
        cut = [line.removesuffix("\r") for line in lines]
        out = [piece for line in cut for piece in self._pieces(line)]
        if not data:
            out.extend(self._pieces(pending.removesuffix("\r")))
            pending = ""
        self._pending = pending
        return out

    def _pieces(self, line: str) -> list[str]:
        size = self._max_length
        return [line[i : i + size] for i in range(0, len(line), size)] or [""]
