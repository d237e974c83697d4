"""``sse-core check --http2``: one request and its response over HTTP/2 (I/O; needs h2).

The h2 package frames the connection (sans-IO, as h11 does for HTTP/1.1); this module moves
its bytes over the prober's blocking socket, acknowledges the DATA it reads (so that flow
control never stalls a long stream), and hands every DATA frame's payload to the prober's
body reader with its arrival time. Header fields are read as sent (h2's inbound validation
is off) so that the checks can see fields HTTP/2 forbids (RFC 9113 section 8.2.2).
"""

from __future__ import annotations

import socket
import time
import zlib

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from .. import SSEError
from ._check_probe import BodyReader, field_value, finish, receive
from ._check_records import End, Response

__all__ = ["exchange"]


def exchange(
    sock: socket.socket,
    base: Response,
    where: tuple[str, str, str],
    body: BodyReader,
    deadline: float,
) -> Response:
    """Send ``base``'s request on a new HTTP/2 connection over ``sock`` and read the answer.

    Args:
        sock: A connected socket (TLS with ``h2`` chosen by ALPN, or cleartext for prior
            knowledge).
        base: The request: method and header fields (names are lowercased, as HTTP/2
            requires).
        where: The ``:scheme``, ``:authority`` and ``:path``.
        body: Where the body goes, read by read.
        deadline: When to stop reading (``time.monotonic()`` seconds).

    Returns:
        What came back (``http_version`` ``"2"``, no reason phrase: HTTP/2 has none).

    Raises:
        OSError: the socket failed while sending.
    """
    scheme, authority, path = where
    connection = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding="latin-1", validate_inbound_headers=False,
        normalize_inbound_headers=False,
    ))
    connection.initiate_connection()
    stream = connection.get_next_available_stream_id()
    request = [(":method", base.method), (":scheme", scheme), (":authority", authority),
               (":path", path), *((name.lower(), value) for name, value in base.request_headers)]
    started = time.monotonic()
    try:
        connection.send_headers(stream, request, end_stream=True)
    except h2.exceptions.ProtocolError as failure:
        return finish(base, None, body, End.FAILED, f"HTTP/2 request: {failure}", started)
    sock.sendall(connection.data_to_send())
    started = time.monotonic()
    head: tuple[int, str, list[tuple[str, str]], float] | None = None
    end = End.STOPPED
    error: str | None = None
    while end is End.STOPPED and error is None and not body.is_done:
        data = receive(sock, deadline)
        if data == b"":
            data = "the connection closed"
        if isinstance(data, str):  # the socket failed, or it closed
            end, error = End.CUT if head else End.FAILED, data
        if not isinstance(data, bytes):
            break
        at = time.monotonic() - started
        try:
            events = connection.receive_data(data)
        except h2.exceptions.ProtocolError as failure:
            end, error = (End.CUT if head else End.FAILED), f"HTTP/2: {failure!r}"
            break
        for event in events:
            if getattr(event, "stream_id", stream) != stream:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                fields = [(str(name).lower(), str(value)) for name, value in event.headers or []]
                status = next((value for name, value in fields if name == ":status"), "0")
                head = (int(status) if status.isdigit() else 0, "",
                        [(name, value) for name, value in fields if not name.startswith(":")],
                        at)
                error = body.start(field_value(head[2], "content-encoding"))
            elif isinstance(event, h2.events.DataReceived):
                connection.acknowledge_received_data(event.flow_controlled_length or 0, stream)
                try:
                    body.feed(event.data or b"", at)
                except (zlib.error, SSEError) as failure:
                    error = f"decoding the body: {failure}"
            elif isinstance(event, h2.events.StreamEnded):
                end = End.CLOSED
            elif isinstance(event, h2.events.StreamReset):
                end = End.CUT if head else End.FAILED
                error = f"the server reset the stream (RST_STREAM, error {event.error_code!r})"
            elif isinstance(event, h2.events.ConnectionTerminated) and end is End.STOPPED:
                end = End.CUT if head else End.FAILED
                error = f"the server ended the connection (GOAWAY, error {event.error_code!r})"
            if error is not None or end is not End.STOPPED:
                break
        sock.sendall(connection.data_to_send())
    return finish(base, head, body, end, error, started)
