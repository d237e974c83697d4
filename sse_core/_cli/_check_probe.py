"""``sse-core check``: the prober, which makes the requests and times what comes back (I/O).

Blocking sockets, TLS from :mod:`ssl` and HTTP/1.1 framing from h11 (HTTP/2 from h2, in
:mod:`._check_h2`, with ``--http2``), so that every read is seen with its arrival time and
the response head exactly as sent; gzip and deflate are undone here with :mod:`zlib`. It
decides nothing: :mod:`._check_judge` does.
"""

from __future__ import annotations

import socket
import ssl
import time
import zlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs
import h11

from .. import Event, Parser, SSEError
from ._check_judge import resume_point
from ._check_records import Arrival, End, Observation, Response

__all__ = ["UNKNOWN_ID", "BodyReader", "fetch", "field_value", "finish", "probe", "receive"]

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


class BodyReader:
    """A response body read by read, for either HTTP version: decoded, timed, its events
    counted, at most :data:`MAX_BODY` bytes kept."""

    def __init__(self, stop_after_events: int | None) -> None:
        self.arrivals: list[Arrival] = []
        self._decoder: zlib._Decompress | None = None
        self._parser = Parser()
        self._stop_after = stop_after_events
        self._events = 0
        self._kept = 0
        self._raw_tail = b""  # the last compressed bytes, to see a flush marker across reads

    def start(self, coding: str | None) -> str | None:
        """Set the ``Content-Encoding`` of the body; an error message when unsupported."""
        found = _decoder(coding)
        if isinstance(found, str):
            return found
        self._decoder = found
        return None

    def feed(self, raw: bytes, at: float) -> None:
        """Take the body bytes of one read.

        Raises:
            zlib.error: they do not decode.
            SSEError: the decoded stream breaks the parser's limits.
        """
        decoder = self._decoder
        body = raw if decoder is None else decoder.decompress(raw, MAX_BODY - self._kept)
        self._kept += len(body)
        is_flushed = None
        if decoder is not None:
            self._raw_tail = (self._raw_tail + raw)[-len(_FLUSH_MARKER):]
            is_flushed = (self._raw_tail == _FLUSH_MARKER or decoder.eof
                          or body[-1:] in (b"\n", b"\r"))
        self.arrivals.append(Arrival(at=at, size=len(raw), data=body, is_flushed=is_flushed))
        if self._stop_after is not None:
            self._events += sum(isinstance(item, Event) for item in self._parser.feed(body))

    @property
    def is_done(self) -> bool:
        """Whether enough was read: the body limit, or the events asked for."""
        return self._kept >= MAX_BODY or (
            self._stop_after is not None and self._events >= self._stop_after)


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    deadline: float,
    context: ssl.SSLContext | None = None,
    stop_after_events: int | None = None,
    is_http2: bool = False,
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
        is_http2: Speak HTTP/2 (needs h2): over TLS offered by ALPN (and required), over
            ``http`` with prior knowledge (RFC 9113 section 3.3).

    Returns:
        What came back, read by read.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    authority = host if parts.port is None else f"{host}:{parts.port}"
    sent = tuple(headers)
    base = Response(method=method, request_headers=sent, end=End.FAILED,
                    http_version="2" if is_http2 else "1.1")
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
            if is_http2 and sock.selected_alpn_protocol() != "h2":
                chosen = sock.selected_alpn_protocol() or "none"
                return _failed(base, f"the server did not agree to HTTP/2 (ALPN: {chosen})",
                               started)
        body = BodyReader(stop_after_events)
        if is_http2:
            from ._check_h2 import exchange

            return exchange(sock, base, (parts.scheme, authority, target), body, deadline)
        connection = h11.Connection(h11.CLIENT)
        request = h11.Request(method=method, target=target,
                              headers=[("Host", authority), *sent])
        sock.sendall(connection.send(request) + (connection.send(h11.EndOfMessage()) or b""))
        started = time.monotonic()
        return _read(sock, connection, base, started, deadline, body)
    except (OSError, h11.LocalProtocolError) as error:
        return _failed(base, f"{type(error).__name__}: {error}", started)
    finally:
        sock.close()


def _failed(base: Response, error: str, started: float) -> Response:
    return Response(
        method=base.method, request_headers=base.request_headers, end=End.FAILED,
        http_version=base.http_version, observed=time.monotonic() - started, error=error,
    )


def finish(
    base: Response,
    head: tuple[int, str, list[tuple[str, str]], float] | None,
    body: BodyReader,
    end: End,
    error: str | None,
    started: float,
) -> Response:
    """The response record once reading stopped: ``head`` is the status, reason, header
    fields (names lowercased) and when they arrived, or ``None`` when none did."""
    observed = time.monotonic() - started
    if head is None:
        return Response(
            method=base.method, request_headers=base.request_headers, end=End.FAILED,
            http_version=base.http_version, observed=observed,
            error=error or f"no response within {observed:.1f} s",
        )
    status, reason, fields, head_at = head
    return Response(
        method=base.method, request_headers=base.request_headers, status=status,
        reason=reason, http_version=base.http_version, headers=tuple(fields), head_at=head_at,
        arrivals=tuple(body.arrivals), end=end, observed=observed, error=error,
    )


def _read(
    sock: socket.socket,
    connection: h11.Connection,
    base: Response,
    started: float,
    deadline: float,
    body: BodyReader,
) -> Response:
    head: tuple[int, str, list[tuple[str, str]], float] | None = None
    version = base.http_version
    end = End.STOPPED
    error: str | None = None
    while True:
        data = receive(sock, deadline)
        if isinstance(data, str):  # the socket failed
            end, error = (End.CUT if head else End.FAILED), data
        if not isinstance(data, bytes):
            break
        at = time.monotonic() - started
        connection.receive_data(data)
        try:
            event = connection.next_event()
            while event is not h11.NEED_DATA:
                if isinstance(event, h11.Response):
                    fields = [(name.decode("latin-1").lower(), value.decode("latin-1"))
                              for name, value in event.headers]
                    head = (event.status_code, event.reason.decode("latin-1"), fields, at)
                    version = event.http_version.decode("ascii")
                    error = body.start(field_value(fields, "content-encoding"))
                    if error is not None:
                        break
                elif isinstance(event, h11.Data):
                    body.feed(bytes(event.data), at)
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    end = End.CLOSED
                    break
                event = connection.next_event()
        except h11.RemoteProtocolError as failure:
            end, error = (End.CUT if head else End.FAILED), f"HTTP: {failure}"
        except (zlib.error, SSEError) as failure:
            error = f"decoding the body: {failure}"
        if end is not End.STOPPED or error is not None or body.is_done:
            break
        if not data:  # h11 reported the close above; this guards a server ending silently
            end = End.CUT if head else End.FAILED
            break
    base = attrs.evolve(base, http_version=version)
    return finish(base, head, body, end, error, started)


def receive(sock: socket.socket, deadline: float) -> bytes | str | None:
    """The next bytes from ``sock`` (``b""`` when it closed), ``None`` once ``deadline``
    (monotonic) passed, or what went wrong when the socket failed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    sock.settimeout(remaining)
    try:
        return sock.recv(_READ_SIZE)
    except TimeoutError:
        return None
    except OSError as failure:
        return f"{type(failure).__name__}: {failure}"


def field_value(fields: list[tuple[str, str]], name: str) -> str | None:
    """The values of the field ``name`` (lowercase) joined with ``", "``, or ``None``."""
    values = [value for key, value in fields if key == name]
    return ", ".join(values) if values else None


def probe(
    url: str,
    *,
    duration: float,
    idle_timeout: float = 30.0,
    origin: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    context: ssl.SSLContext | None = None,
    is_http2: bool = False,
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
        is_http2: Make every request over HTTP/2 (see :func:`fetch`).

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

    def get(**kwargs: Any) -> Response:
        return fetch(url, context=context, is_http2=is_http2, **kwargs)

    head = get(method="HEAD", headers=extra, deadline=quick())
    options = None
    if origin is not None:
        preflight = [("Access-Control-Request-Method", "GET"),
                     ("Access-Control-Request-Headers", "last-event-id"), *extra]
        options = get(method="OPTIONS", headers=preflight, deadline=quick())
    main = get(headers=stream_headers, deadline=start + MAIN_SHARE * duration)
    point = resume_point(main) if main.status == 200 else None
    resumed = None
    if point is not None and time.monotonic() < end:
        resumed = get(
            headers=[*stream_headers, ("Last-Event-ID", point)],
            deadline=max(start + RESUMED_SHARE * duration, time.monotonic() + 0.1),
            stop_after_events=3,
        )
    unknown = None
    if main.status == 200 and time.monotonic() < end:
        unknown = get(
            headers=[*stream_headers, ("Last-Event-ID", UNKNOWN_ID)],
            deadline=end, stop_after_events=1,
        )
    return Observation(
        url=url, duration=duration, idle_timeout=idle_timeout, origin=origin, main=main,
        resumed=resumed, resumed_from=point, unknown=unknown, head=head, options=options,
    )
