"""``sse-core listen URL``: print a stream's events as they arrive (floor 4).

An ``EventSource`` of the adapters does the listening -- the httpx driver when httpx is
installed (proxies from the environment, HTTP/2), the asyncio socket adapter otherwise -- so
reconnection with backoff and ``retry:``, ``Last-Event-ID``, stall detection, gzip and the
re-send rule for ``POST`` are the library's. This module only turns the source's reports
into lines: events on stdout (with ``--json``, gaps too, in their place between the
events), status changes, gaps and failures on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import ssl
import sys
from typing import TYPE_CHECKING, Any

from .. import ClientConfig, Event, HTTPStatusError, InvalidConfigError, StreamError, serialize
from .._actions import ClientState, Deliver, ReportDropped, ReportGap, ReportStatus, ReportTransport
from ..state import BackoffConfig
from ._common import (
    Exit,
    Status,
    header,
    non_negative_float,
    positive_float,
    positive_int,
    tls_context,
)

if TYPE_CHECKING:  # the adapters need the http extra: imported only when listening
    from .. import ClientSession
    from ..adapters._asyncio_client import AsyncioClientBase

__all__ = ["add_parser", "format_event", "gap_record", "run"]

_DESCRIPTION = """\
Print the events of an event stream as they arrive: one per line (type, id and data), or
one JSON object per line (--json; a gap is a line of its own there, {"gap": {...}}), or
the wire text (--raw). Status changes go to stderr.
It reconnects with backoff, honours the server's retry:, resumes with Last-Event-ID and
replaces a stalled connection, as the library does.

Exit status: 0 when it ended as asked (--max-events, --timeout, or the server answered
204 No Content); 1 when the stream failed (an HTTP error status or another content type,
the reconnection attempts ran out, a cut POST that may not be sent again); 2 for a usage
error; 130 on Ctrl-C.
"""

_NOT_IDEMPOTENT = """\
A request with a body is not idempotent: when its stream is cut before any event id
arrived, it is not sent again (the listening fails) unless --resend says it may be.
Once an id arrived it resumes with Last-Event-ID as a GET stream does.
"""


def add_parser(subparsers: Any) -> None:
    """Add ``listen`` and its options to the command line's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "listen",
        help="print a stream's events as they arrive, reconnecting as needed",
        description=_DESCRIPTION,
        epilog=_NOT_IDEMPOTENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", metavar="URL", help="the event stream (http:// or https://)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true",
                        help="one JSON object per event: event, id, last_event_id, data; and "
                        "one per gap, in its place: {\"gap\": {reason, missed, after_id, "
                        "first, last}}")
    output.add_argument("--raw", action="store_true",
                        help="the wire text of each event (as sse_core serializes it)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no status lines on stderr")
    request = parser.add_argument_group("the request")
    request.add_argument("-H", "--header", dest="headers", action="append", type=header,
                         default=[], metavar="'NAME: VALUE'",
                         help="a request header field (repeatable)")
    request.add_argument("-X", "--request", dest="method", metavar="METHOD",
                         help="the request method (default GET, POST with a body)")
    body = request.add_mutually_exclusive_group()
    body.add_argument("--data", metavar="TEXT", help="a request body (UTF-8)")
    body.add_argument("--json-body", metavar="JSON",
                      help="a JSON request body (Content-Type: application/json)")
    request.add_argument("--resend", action="store_true",
                         help="a request with a body may be sent again after a cut that "
                         "left no id to resume from")
    request.add_argument("--last-event-id", default="", metavar="ID",
                         help="start from this id (sent as Last-Event-ID)")
    request.add_argument("--no-compression", action="store_true",
                         help="do not ask for gzip (Accept-Encoding: identity)")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-events", type=positive_int, metavar="N",
                        help="exit 0 after N events")
    limits.add_argument("--timeout", type=positive_float, metavar="S",
                        help="exit 0 after S seconds")
    limits.add_argument("--stall-timeout", type=non_negative_float, default=45.0, metavar="S",
                        help="replace a connection silent for S seconds (default 45; 0: never)")
    limits.add_argument("--max-attempts", type=positive_int, metavar="N",
                        help="give up (exit 1) after N reconnections in a row (default: never)")
    transport = parser.add_argument_group("transport")
    transport.add_argument("--transport", choices=("auto", "httpx", "sockets"), default="auto",
                           help="httpx (proxies, HTTP/2) or the asyncio socket adapter; auto "
                           "(the default) takes httpx when it is installed")
    transport.add_argument("--http2", action="store_true",
                           help="allow HTTP/2 (httpx with h2 installed)")
    transport.add_argument("--insecure", action="store_true",
                           help="do not verify the server's TLS certificate")
    transport.add_argument("--cacert", metavar="FILE",
                           help="trust the CA certificates in FILE (PEM)")


def run(args: argparse.Namespace) -> int:
    """Listen as ``args`` say; return the exit status."""
    status = Status(is_quiet=args.quiet)
    try:
        config = _config(args)
        ssl_context = tls_context(args)
        transport = _transport(args)
    except (InvalidConfigError, ValueError, OSError) as error:
        print(f"sse-core listen: {error}", file=sys.stderr)
        return Exit.USAGE
    write = _Printer(args)
    try:
        return asyncio.run(_listen(args, config, ssl_context, transport, write, status))
    except KeyboardInterrupt:
        status("interrupted")
        return Exit.INTERRUPTED
    except BrokenPipeError:  # the reader of stdout went away (| head): that is an end too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.OK


def format_event(event: Event) -> str:
    """An event as ``listen`` prints it: ``type id=ID: data``, data lines after the first
    indented under the first."""
    head = event.event if event.id is None else f"{event.event} id={event.id}"
    indent = "\n" + " " * (len(head) + 2)
    return f"{head}: {indent.join(event.data.split(chr(10)))}"


def gap_record(report: ReportGap, after_id: str | None) -> dict[str, Any]:
    """A gap as ``listen --json`` prints it: ``{"gap": {...}}`` with ``reason``, ``missed``
    (how many events, or ``None`` when the server could not say), ``after_id`` (the id the
    events were lost after), and ``first`` / ``last`` (the missing sequence numbers of a
    sequencer gap, else ``None``)."""
    return {"gap": {"reason": report.reason, "missed": report.count, "after_id": after_id,
                    "first": report.first, "last": report.last}}


class _Printer:
    """What goes to stdout, flushed at once (a pipe reader sees it now): each event as
    ``--json`` / ``--raw`` / the default say, and with ``--json`` each gap in its place."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._is_json: bool = args.json
        self._is_raw: bool = args.raw

    def event(self, event: Event) -> None:
        """Print one event."""
        if self._is_raw:
            sys.stdout.buffer.write(serialize(event))
            sys.stdout.buffer.flush()
            return
        if self._is_json:
            record = {"event": event.event, "id": event.id,
                      "last_event_id": event.last_event_id, "data": event.data}
            self._line(json.dumps(record, ensure_ascii=False))
        else:
            self._line(format_event(event))

    def gap(self, report: ReportGap, after_id: str | None) -> None:
        """Print a gap between the events (``--json`` only: the other formats have no place
        for it, and its status line says it)."""
        if self._is_json:
            self._line(json.dumps(gap_record(report, after_id), ensure_ascii=False))

    @staticmethod
    def _line(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def _config(args: argparse.Namespace) -> ClientConfig:
    """The session's configuration from the options.

    Raises:
        InvalidConfigError: a value the configuration refuses.
        ValueError: ``--json-body`` is not JSON.
    """
    has_body = args.data is not None or args.json_body is not None
    method = args.method or ("POST" if has_body else "GET")
    body: dict[str, Any] = {}
    if args.data is not None:
        body["body"] = args.data
    if args.json_body is not None:
        try:
            body["json"] = json.loads(args.json_body)
        except ValueError as error:
            raise ValueError(f"--json-body is not JSON: {error}") from None
    return ClientConfig(
        url=args.url,
        method=method,
        headers=tuple(args.headers),
        last_event_id=args.last_event_id,
        is_resend_allowed=args.resend,
        is_gzip_accepted=not args.no_compression,
        stall_timeout=args.stall_timeout or None,
        backoff=BackoffConfig(max_attempts=args.max_attempts),
        **body,
    )


def _transport(args: argparse.Namespace) -> str:
    """``"httpx"`` or ``"sockets"``, as asked and installed.

    Raises:
        ValueError: the transport asked for, or ``--http2``, needs a package not installed.
    """
    has_httpx = importlib.util.find_spec("httpx") is not None
    transport: str = args.transport
    if transport == "auto":
        transport = "httpx" if has_httpx else "sockets"
    if transport == "httpx" and not has_httpx:
        raise ValueError("--transport httpx needs httpx (pip install 'sse-core[httpx]')")
    if transport == "sockets" and importlib.util.find_spec("h11") is None:
        raise ValueError("the socket transport needs h11 (pip install 'sse-core[http]')")
    if args.http2:
        if transport != "httpx":
            raise ValueError("--http2 needs the httpx transport")
        if importlib.util.find_spec("h2") is None:
            raise ValueError("--http2 needs h2 (pip install 'httpx[http2]')")
    return transport


async def _listen(
    args: argparse.Namespace,
    config: ClientConfig,
    ssl_context: ssl.SSLContext | None,
    transport: str,
    write: _Printer,
    status: Status,
) -> int:
    """Listen until the end asked for; the exit status."""
    from ..adapters import ClientOptions

    options = ClientOptions(timeout=args.timeout, ssl_context=ssl_context)
    if transport == "sockets":
        from ..adapters.asyncio import EventSource

        status(f"listening to {config.url} with the asyncio socket adapter")
        return await _follow(EventSource(config, options=options), args, write, status)
    import httpx

    from ..adapters.httpx import EventSource as HttpxEventSource

    verify: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
    async with httpx.AsyncClient(verify=verify, http2=args.http2, follow_redirects=True) as client:
        status(f"listening to {config.url} with httpx{' (HTTP/2 allowed)' if args.http2 else ''}")
        source = HttpxEventSource(client, config, options=ClientOptions(timeout=args.timeout))
        return await _follow(source, args, write, status)


async def _follow(source: AsyncioClientBase, args: argparse.Namespace,
                  write: _Printer, status: Status) -> int:
    """Print ``source``'s reports until it ends; the exit status."""
    count = 0
    resumed_from = ""  # the Last-Event-ID of the attempt under way
    last_id = args.last_event_id  # the id of the last event printed (or started from)
    try:
        async with source:
            async for report in source.reports():
                match report:
                    case Deliver(event=event):
                        write.event(event)
                        last_id = event.last_event_id
                        count += 1
                        if args.max_events is not None and count >= args.max_events:
                            status(f"received {count} events (--max-events): done")
                            return Exit.OK
                    case ReportStatus():
                        if report.state is ClientState.CONNECTING:
                            resumed_from = source.session.last_event_id
                        status(_describe(report, source.session, resumed_from))
                    case ReportGap():
                        after_id = report.last_event_id
                        if after_id is None:  # a sequencer gap: after the last one printed
                            after_id = last_id or None
                        write.gap(report, after_id)
                        status(_describe_gap(report))
                    case ReportDropped():
                        status(f"dropped a chunked message ({report.reason}): {report.detail}")
                    case ReportTransport():
                        why = f" because {report.reason}" if report.reason else ""
                        status(f"switched to {report.transport.value}{why}")
    except HTTPStatusError as error:
        body = error.body[:200].decode("utf-8", "replace")
        more = "..." if len(error.body) > 200 else ""
        status(f"refused: HTTP {error.status}" + (f": {body!r}{more}" if body else ""))
        return Exit.FAILED
    except StreamError as error:  # the CLOSED status said why
        status(f"failed ({error.report.cause.value})")
        return Exit.FAILED
    status(f"ended after {count} events")
    return Exit.OK


def _describe(report: ReportStatus, session: ClientSession, resumed_from: str) -> str:
    """A status change as a line: what the client does now, and why."""
    reason = report.reason
    match report.state:
        case ClientState.CONNECTING:
            return f"connecting (Last-Event-ID: {resumed_from})" if resumed_from else "connecting"
        case ClientState.CONNECTED:
            return "connected"
        case ClientState.STREAMING:
            return f"streaming, resumed from id {resumed_from}" if resumed_from else "streaming"
        case ClientState.RECONNECTING:
            # The session's deadline is the reconnection's while it is still waiting for it.
            deadline = session.next_deadline()
            delay = ""
            if session.state is ClientState.RECONNECTING and deadline is not None:
                delay = f" in {max(0.0, deadline - report.since):.1f} s"
            return f"reconnecting{delay}" + (f" because {reason}" if reason else "")
        case ClientState.CLOSED:
            return "closed" + (f": {reason}" if reason else "")
    raise AssertionError(report.state)  # pragma: no cover


def _describe_gap(report: ReportGap) -> str:
    """A gap as a line: how many events were lost, when known, and why."""
    if report.first is not None:
        return (f"gap of {report.count} events (numbers {report.first}..{report.last}, "
                f"{report.reason}); listening goes on")
    lost = "events were lost" if report.missed is None else f"{report.missed} events were lost"
    return (f"gap: the server could not resume from id {report.last_event_id!r} "
            f"({report.reason}); {lost}, listening goes on")

