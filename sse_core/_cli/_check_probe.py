"""``sse-core check``: the prober, which makes the requests and times what comes back (I/O).

Blocking sockets, TLS from :mod:`ssl` and HTTP/1.1 framing from h11, so that every read is
seen with its arrival time and the response head exactly as sent; gzip and deflate are undone
here with :mod:`zlib`. It decides nothing: :mod:`._check_judge` does.
"""

from __future__ import annotations

import socket
import ssl
import time
import zlib
from collections.abc import Sequence
from urllib.parse import urlsplit

import h11

from .. import Event, Parser, SSEError
from ._check_judge import resume_point
from ._check_records import Arrival, End, Observation, Response

__all__ = ["UNKNOWN_ID", "fetch", "probe"]

#: The ``Last-Event-ID`` no server can know.
UNKNOWN_ID = "sse-core-check-unknown-id"
#: The most body bytes kept per response (after decoding).
MAX_BODY = 4 << 20
#: Shares of the duration, from the start of the check, by which each request ends.
MAIN_SHARE = 0.55
RESUMED_SHARE = 0.85
#: The most seconds a HEAD or OPTIONS request may take.
QUICK = 2.0

_READ_SIZE = 65536
#: What the compressed bytes end with after ``Z_SYNC_FLUSH`` or ``Z_FULL_FLUSH``: an empty
#: stored block (RFC 1951 section 3.2.4), byte-aligned.
_FLUSH_MARKER = b"\x00\x00\xff\xff"


def _decoder(coding: str | None) -> zlib._Decompress | str | None:
    """A decompressor for the body's coding, ``None`` for none, or an error message."""
    name = (coding or "identity").strip().lower()
    if name == "identity":
        return None
    if name in ("gzip", "x-gzip"):
        return zlib.decompressobj(wbits=31)
    if name == "deflate":
        return zlib.decompressobj()
    return f"cannot decode Content-Encoding: {coding}"


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    deadline: float,
    context: ssl.SSLContext | None = None,
    stop_after_events: int | None = None,
) -> Response:
    """Make one request and read its response until it ends, ``deadline`` (monotonic) passes,
    or ``stop_after_events`` events were dispatched.

    Args:
        url: An ``http`` or ``https`` URL.
        method: The request method.
        headers: Header fields besides ``Host``.
        deadline: When to stop reading (``time.monotonic()`` seconds).
        context: The TLS context for ``https``.
        stop_after_events: Stop once this many events were dispatched.

    Returns:
        What came back, read by read.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    authority = host if parts.port is None else f"{host}:{parts.port}"
    sent = tuple(headers)
    fields = [("Host", authority), *sent]
    base = Response(method=method, request_headers=sent, end=End.FAILED)
    started = time.monotonic()
    try:
        sock = socket.create_connection((host, port), timeout=max(0.01, deadline - started))
    except OSError as error:
        return _failed(base, f"cannot connect to {authority}: {error}", started)
    try:
        if parts.scheme == "https":
            sock = (context or ssl.create_default_context()).wrap_socket(
                sock, server_hostname=host
            )
        connection = h11.Connection(h11.CLIENT)
        request = h11.Request(method=method, target=target, headers=fields)
        sock.sendall(connection.send(request) + (connection.send(h11.EndOfMessage()) or b""))
        started = time.monotonic()
        return _read(sock, connection, base, started, deadline, stop_after_events)
    except (OSError, h11.LocalProtocolError) as error:
        return _failed(base, f"{type(error).__name__}: {error}", started)
    finally:
        sock.close()


def _failed(base: Response, error: str, started: float) -> Response:
    return Response(
        method=base.method, request_headers=base.request_headers, end=End.FAILED,
        observed=time.monotonic() - started, error=error,
    )


def _read(
    sock: socket.socket,
    connection: h11.Connection,
    base: Response,
    started: float,
    deadline: float,
    stop_after_events: int | None,
) -> Response:
    head: h11.Response | None = None
    head_at = 0.0
    arrivals: list[Arrival] = []
    decoder: zlib._Decompress | None = None
    parser = Parser()
    events = 0
    kept = 0
    raw_tail = b""  # the last compressed bytes, to see a flush marker split across reads
    end = End.STOPPED
    error: str | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            data = sock.recv(_READ_SIZE)
        except TimeoutError:
            break
        except OSError as failure:
            end, error = (End.CUT if head else End.FAILED), f"{type(failure).__name__}: {failure}"
            break
        at = time.monotonic() - started
        connection.receive_data(data)
        try:
            event = connection.next_event()
            while event is not h11.NEED_DATA:
                if isinstance(event, h11.Response):
                    head, head_at = event, at
                    found = _decoder(_field(event, b"content-encoding"))
                    if isinstance(found, str):
                        error = found
                        break
                    decoder = found
                elif isinstance(event, h11.Data):
                    raw = bytes(event.data)
                    body = raw if decoder is None else decoder.decompress(raw, MAX_BODY - kept)
                    kept += len(body)
                    is_flushed = None
                    if decoder is not None:
                        raw_tail = (raw_tail + raw)[-len(_FLUSH_MARKER):]
                        is_flushed = (raw_tail == _FLUSH_MARKER or decoder.eof
                                      or body[-1:] in (b"\n", b"\r"))
                    arrivals.append(Arrival(at=at, size=len(raw), data=body,
                                            is_flushed=is_flushed))
                    if stop_after_events is not None:
                        events += sum(isinstance(item, Event) for item in parser.feed(body))
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    end = End.CLOSED
                    break
                event = connection.next_event()
        except h11.RemoteProtocolError as failure:
            end, error = (End.CUT if head else End.FAILED), f"HTTP: {failure}"
        except (zlib.error, SSEError) as failure:
            error = f"decoding the body: {failure}"
        if end is not End.STOPPED or error is not None or kept >= MAX_BODY:
            break
        if stop_after_events is not None and events >= stop_after_events:
            break
        if not data:  # h11 reported the close above; this guards a server ending silently
            end = End.CUT if head else End.FAILED
            break
    observed = time.monotonic() - started
    if head is None:
        return Response(
            method=base.method, request_headers=base.request_headers, end=End.FAILED,
            observed=observed, error=error or f"no response within {observed:.1f} s",
        )
    return Response(
        method=base.method,
        request_headers=base.request_headers,
        status=head.status_code,
        reason=head.reason.decode("latin-1"),
        http_version=head.http_version.decode("ascii"),
        headers=tuple(
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in head.headers
        ),
        head_at=head_at,
        arrivals=tuple(arrivals),
        end=end,
        observed=observed,
        error=error,
    )


def _field(head: h11.Response, name: bytes) -> str | None:
    values = [value.decode("latin-1") for key, value in head.headers if key == name]
    return ", ".join(values) if values else None


def probe(
    url: str,
    *,
    duration: float,
    idle_timeout: float = 30.0,
    origin: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    context: ssl.SSLContext | None = None,
) -> Observation:
    """Observe an endpoint within ``duration`` seconds: ``HEAD`` (and the CORS preflight
    with an origin), a long ``GET``, a reconnection with an id it saw, one with an unknown id.

    Args:
        url: The endpoint.
        duration: The bound on the whole check, in seconds.
        idle_timeout: Passed through to the observation (the heartbeat check's yardstick).
        origin: An ``Origin`` to send, with a preflight.
        headers: Header fields to add to every request (they replace the defaults).
        context: The TLS context for ``https``.

    Returns:
        Everything seen.
    """
    start = time.monotonic()
    end = start + duration
    extra = [(name, value) for name, value in headers]
    names = {name.lower() for name, _ in extra}
    if origin is not None and "origin" not in names:
        extra.append(("Origin", origin))
    defaults = [("Accept", "text/event-stream"), ("Cache-Control", "no-cache"),
                ("Accept-Encoding", "gzip")]
    stream_headers = [field for field in defaults if field[0].lower() not in names] + extra

    def quick() -> float:
        return min(end, time.monotonic() + min(QUICK, duration / 10))

    head = fetch(url, method="HEAD", headers=extra, deadline=quick(), context=context)
    options = None
    if origin is not None:
        preflight = [("Access-Control-Request-Method", "GET"),
                     ("Access-Control-Request-Headers", "last-event-id"), *extra]
        options = fetch(url, method="OPTIONS", headers=preflight, deadline=quick(),
                        context=context)
    main = fetch(url, headers=stream_headers, deadline=start + MAIN_SHARE * duration,
                 context=context)
    point = resume_point(main) if main.status == 200 else None
    resumed = None
    if point is not None and time.monotonic() < end:
        resumed = fetch(
            url, headers=[*stream_headers, ("Last-Event-ID", point)],
            deadline=max(start + RESUMED_SHARE * duration, time.monotonic() + 0.1),
            context=context, stop_after_events=3,
        )
    unknown = None
    if main.status == 200 and time.monotonic() < end:
        unknown = fetch(
            url, headers=[*stream_headers, ("Last-Event-ID", UNKNOWN_ID)],
            deadline=end, context=context, stop_after_events=1,
        )
    return Observation(
        url=url, duration=duration, idle_timeout=idle_timeout, origin=origin, main=main,
        resumed=resumed, resumed_from=point, unknown=unknown, head=head, options=options,
    )
