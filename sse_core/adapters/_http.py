"""HTTP/1.1 for the adapters, without I/O: h11 framing around the sessions (floor 4, sans-IO).

The adapters share this module so that none of them writes HTTP or makes a protocol
decision; they open, write, read and close sockets when told to.

- :class:`HTTPClient` wraps a :class:`~sse_core.ClientSession`. It turns its
  :class:`~sse_core.Connect` into :class:`OpenConnection` and request bytes, feeds the
  response through h11 into the session, follows redirects as a browser's ``EventSource``
  does, and bounds the time a connection may take to open.
- :class:`ServerConnection` reads one request with h11 (refusing what an event-stream
  server should not serve: another HTTP version, ambiguous framing) and turns a server
  session's :class:`~sse_core.SendHead` / :class:`~sse_core.Send` /
  :class:`~sse_core.Disconnect` into response bytes.

Like the core it never reads a clock: every input takes ``now``.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Literal
from urllib.parse import urljoin, urlsplit

import attrs
import h11

from .. import ClientSession
from .._actions import (
    Action,
    Connect,
    Deliver,
    DeliverBatch,
    Disconnect,
    ReportDropped,
    ReportFailure,
    ReportGap,
    ReportStale,
    ReportStatus,
    ReportTransport,
    Request,
    Send,
    SendHead,
)
from .._broadcast import Poller, Subscriber
from .._errors import InvalidConfigError, LocalProtocolError, RemoteProtocolError
from .._serializer import HEARTBEAT
from .._validators import int_at_least, non_negative_int, positive_number

__all__ = [
    "BUSY_RETRY_AFTER",
    "ClientOutput",
    "CloseConnection",
    "Endpoint",
    "HTTPClient",
    "IncomingRequest",
    "NetworkSignal",
    "OpenConnection",
    "REDIRECT_STATUSES",
    "Refusal",
    "RequestRefused",
    "STREAM_METHODS",
    "ServerConnection",
    "Write",
    "endpoint_of",
    "refusal_for",
]

#: Statuses a fetch follows (with a ``Location`` field), as the Fetch standard's "redirect
#: status" list.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: The Fetch standard's redirect limit: "If request's redirect count is 20, return a network
#: error."
DEFAULT_MAX_REDIRECTS = 20

# Fields a cross-origin redirect must not carry to the other origin.
_CREDENTIAL_FIELDS = frozenset({"authorization", "cookie", "proxy-authorization"})
# Fields that describe a request body, dropped when a redirect turns the request into a GET.
_BODY_FIELDS = frozenset({"content-type", "content-length", "content-encoding",
                          "content-language", "content-location"})


@attrs.frozen(kw_only=True)
class Endpoint:
    """Where to open a TCP connection.

    Attributes:
        host: Host name or IP address (no brackets around IPv6).
        port: TCP port.
        is_tls: Whether to speak TLS on it (``https``), with ``host`` as the server name.
    """

    host: str
    port: int
    is_tls: bool


@attrs.frozen(kw_only=True)
class OpenConnection:
    """Open a TCP (and TLS) connection to :attr:`endpoint`, then call
    :meth:`HTTPClient.on_connected` (or :meth:`HTTPClient.on_connection_error`)."""

    endpoint: Endpoint


@attrs.frozen(kw_only=True)
class Write:
    """Write these bytes to the open connection."""

    data: bytes


@attrs.frozen(kw_only=True)
class CloseConnection:
    """Close the connection (or give up opening it); nothing more is read from it.

    Attributes:
        reason: Why, for logs.
    """

    reason: str


#: The platform's network signals an ``EventSource`` passes on to its session.
NetworkSignal = Literal["offline", "online", "network_changed"]

#: What :class:`HTTPClient` asks of its adapter: socket work, and the session's reports.
ClientOutput = (
    OpenConnection
    | Write
    | CloseConnection
    | Deliver
    | DeliverBatch
    | ReportStatus
    | ReportGap
    | ReportDropped
    | ReportTransport
    | ReportFailure
    | ReportStale
)


def endpoint_of(url: str) -> Endpoint:
    """The endpoint of an absolute ``http://`` or ``https://`` URL.

    Raises:
        InvalidConfigError: another scheme, no host, or a bad port.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidConfigError(f"URL scheme must be http or https, got {url!r}")
    try:
        port = parts.port
    except ValueError as error:
        raise InvalidConfigError(f"bad port in URL {url!r}") from error
    if not parts.hostname:
        raise InvalidConfigError(f"URL has no host: {url!r}")
    is_tls = scheme == "https"
    return Endpoint(host=parts.hostname, port=port or (443 if is_tls else 80), is_tls=is_tls)


def _origin(url: str) -> tuple[str, str, int]:
    endpoint = endpoint_of(url)
    return ("https" if endpoint.is_tls else "http", endpoint.host.lower(), endpoint.port)


def _host_field(endpoint: Endpoint) -> str:
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    if endpoint.port == (443 if endpoint.is_tls else 80):
        return host
    return f"{host}:{endpoint.port}"


def _target(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def _reason(status: int) -> bytes:
    """The usual reason phrase of a status (``b""`` for an unknown one)."""
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _text(value: bytes) -> str:
    return value.decode("latin-1")


class HTTPClient:
    """An EventSource over HTTP/1.1: a :class:`~sse_core.ClientSession` plus h11.

    Inputs mirror the socket's life (:meth:`on_connected`, :meth:`on_data`, :meth:`on_eof`,
    :meth:`on_connection_error`) and the clock (:meth:`on_timer` at :meth:`next_deadline`).
    Each returns the outputs to carry out in order: :class:`OpenConnection`, :class:`Write`,
    :class:`CloseConnection`, and the session's reports (:class:`~sse_core.Deliver`,
    :class:`~sse_core.ReportStatus` ...), which the adapter hands to the application.
    At most one connection is open at a time; after a :class:`CloseConnection` the adapter
    reads nothing more from the old one.

    Redirects (301, 302, 303, 307, 308 with ``Location``) are followed on a new connection,
    at most ``max_redirects`` times per connection attempt, as Fetch does for EventSource:
    303 (and 301/302 after a ``POST``) continue as ``GET`` without a body, and credentials
    (``Authorization``, ``Cookie``) are not sent to another origin. Every reconnection starts
    again from the session's URL.

    Args:
        session: The client session to drive (not started yet).
        max_redirects: The most redirects one attempt follows before it counts as a network
            error (and the session reconnects with backoff).
        connect_timeout: Seconds an attempt may take from :class:`OpenConnection` to the
            response head, or ``None``; past it the attempt fails as a lost connection. Each
            redirect starts the count again.
        max_head_size: The largest response head accepted, in bytes.

    Raises:
        InvalidConfigError: a bad argument.
    """

    def __init__(
        self,
        session: ClientSession,
        *,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        connect_timeout: float | None = 30.0,
        max_head_size: int = 64 * 1024,
    ) -> None:
        if not isinstance(session, ClientSession):
            raise InvalidConfigError(f"session must be a ClientSession, got {session!r}")
        non_negative_int.check("max_redirects", max_redirects)
        positive_number.or_none().check("connect_timeout", connect_timeout)
        int_at_least(1024).check("max_head_size", max_head_size)
        endpoint_of(session.config.url)  # refuse a URL we cannot connect to, now
        self._session = session
        self._max_redirects = max_redirects
        self._connect_timeout = connect_timeout
        self._max_head_size = max_head_size
        # The attempt in flight: the request (after redirects), its h11 connection.
        self._request: Request | None = None
        self._endpoint: Endpoint | None = None
        self._h11: h11.Connection | None = None
        self._redirects = 0
        self._head_deadline: float | None = None
        self._is_head_in = False
        self._is_eof = False  # the peer closed the connection in flight
        self._wall_now: float | None = None  # the wall clock of the bytes being read

    @property
    def session(self) -> ClientSession:
        """The session being driven (state, last event ID, metrics)."""
        return self._session

    @property
    def url(self) -> str | None:
        """The URL of the attempt in flight (after redirects), or ``None``."""
        return self._request.url if self._request is not None else None

    def next_deadline(self) -> float | None:
        """When to call :meth:`on_timer` next, or ``None``."""
        deadlines = [
            d for d in (self._session.next_deadline(), self._head_deadline) if d is not None
        ]
        return min(deadlines) if deadlines else None

    # --- inputs ---------------------------------------------------------------------------

    def start(self, now: float) -> list[ClientOutput]:
        """Start the session: the first :class:`OpenConnection`."""
        return self._carry(self._session.start(now), now)

    def close(self, now: float, reason: str | None = None) -> list[ClientOutput]:
        """Close for good (the application's ``close()``; ``reason`` as the session's)."""
        outputs = self._carry(self._session.close(now, reason), now)
        # The session's Disconnect normally closed the attempt in flight above; should the
        # two ever disagree, a socket must still not outlive close().
        if self._request is not None:
            outputs.insert(0, CloseConnection(reason="closed by the application"))
            self._forget()
        return outputs

    def on_connected(self, now: float) -> list[ClientOutput]:
        """The connection asked for opened (TLS handshake done): send the request.

        Raises:
            LocalProtocolError: no connection is being opened.
        """
        request = self._request
        if request is None or self._endpoint is None or self._h11 is not None:
            raise LocalProtocolError("on_connected() with no connection being opened")
        connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=self._max_head_size)
        self._h11 = connection
        self._is_eof = False
        headers = [("Host", _host_field(self._endpoint)), *request.headers]
        if request.body is not None:
            headers.append(("Content-Length", str(len(request.body))))
        parts = [
            connection.send(h11.Request(
                method=request.method, target=_target(request.url), headers=headers
            ))
        ]
        if request.body:
            parts.append(connection.send(h11.Data(data=request.body)))
        parts.append(connection.send(h11.EndOfMessage()))
        return [Write(data=b"".join(part for part in parts if part))]

    def on_data(
        self, data: bytes, now: float, *, wall_now: float | None = None
    ) -> list[ClientOutput]:
        """Bytes arrived on the connection (``wall_now``: the wall clock, for the latency of
        stamped events; see :meth:`~sse_core.ClientSession.on_data`)."""
        if self._h11 is None:
            raise LocalProtocolError("on_data() with no open connection")
        if not data:
            return self.on_eof(now)
        self._h11.receive_data(data)
        self._wall_now = wall_now
        return self._read(now)

    def on_eof(self, now: float) -> list[ClientOutput]:
        """The peer closed the connection (end of file)."""
        if self._h11 is None:
            raise LocalProtocolError("on_eof() with no open connection")
        self._is_eof = True
        self._h11.receive_data(b"")
        return self._read(now)

    def on_connection_error(self, now: float, reason: str) -> list[ClientOutput]:
        """Opening failed, or the open connection broke (reset, TLS error ...).

        Ignored when no connection is in flight (e.g. an error seen after a close).
        """
        if self._request is None:
            return []
        return self._lost(now, reason)

    def on_timer(self, now: float) -> list[ClientOutput]:
        """Wake-up at (or after) :meth:`next_deadline`."""
        if self._head_deadline is not None and now >= self._head_deadline:
            return self._lost(now, f"no response within {self._connect_timeout:g} s")
        return self._carry(self._session.on_timer(now), now)

    def on_network(self, signal: NetworkSignal, now: float) -> list[ClientOutput]:
        """The platform's network signal (:meth:`~sse_core.ClientSession.on_offline`,
        ``on_online``, ``on_network_changed``): a connection it drops is closed."""
        return self._carry(getattr(self._session, f"on_{signal}")(now), now)

    # --- internals ------------------------------------------------------------------------

    def _carry(self, actions: Sequence[Action], now: float) -> list[ClientOutput]:
        """Turn session actions into outputs (Connect and Disconnect become socket work)."""
        outputs: list[ClientOutput] = []
        for action in actions:
            if type(action) is Deliver:  # the common case first
                outputs.append(action)
            elif isinstance(action, Connect):
                self._redirects = 0
                outputs += self._open(action.request, now)
            elif isinstance(action, Disconnect):
                if self._request is not None:
                    outputs.append(CloseConnection(reason=action.reason))
                    self._forget()
            elif isinstance(action, (Send, SendHead)):  # pragma: no cover - server actions
                raise AssertionError(f"a client session returned {action!r}")
            else:
                outputs.append(action)
        return outputs

    def _open(self, request: Request, now: float) -> list[ClientOutput]:
        self._request = request
        self._endpoint = endpoint_of(request.url)
        self._h11 = None
        self._is_head_in = False
        if self._connect_timeout is not None:
            self._head_deadline = now + self._connect_timeout
        return [OpenConnection(endpoint=self._endpoint)]

    def _forget(self) -> None:
        self._request = None
        self._endpoint = None
        self._h11 = None
        self._head_deadline = None
        self._is_head_in = False

    def _lost(self, now: float, reason: str) -> list[ClientOutput]:
        self._forget()
        outputs: list[ClientOutput] = [CloseConnection(reason=reason)]
        return outputs + self._carry(self._session.on_connection_lost(now, reason), now)

    def _read(self, now: float) -> list[ClientOutput]:
        outputs: list[ClientOutput] = []
        while self._h11 is not None:
            connection = self._h11
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as error:
                if connection.their_state is h11.ERROR and self._is_eof:
                    reason = "connection closed mid-response"
                else:
                    reason = f"bad HTTP response: {error}"
                return outputs + self._lost(now, reason)
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                outputs += self._on_head(event, now)
            elif isinstance(event, h11.Data):
                body = bytes(event.data)
                outputs += self._carry(
                    self._session.on_data(body, now, wall_now=self._wall_now), now
                )
            elif isinstance(event, h11.EndOfMessage):
                # The body ended: this connection is done either way.
                self._forget()
                outputs.append(CloseConnection(reason="response ended"))
                outputs += self._carry(self._session.on_eof(now), now)
            elif isinstance(event, h11.ConnectionClosed):  # pragma: no cover - after EOM only
                break
        return outputs

    def _on_head(self, response: h11.Response, now: float) -> list[ClientOutput]:
        headers = [(_text(name), _text(value)) for name, value in response.headers]
        location = next((value for name, value in headers if name.lower() == "location"), None)
        if response.status_code in REDIRECT_STATUSES and location is not None:
            return self._redirect(response.status_code, location, now)
        self._is_head_in = True
        self._head_deadline = None
        return self._carry(self._session.on_response(response.status_code, headers, now), now)

    def _redirect(self, status: int, location: str, now: float) -> list[ClientOutput]:
        request = self._request
        assert request is not None
        if self._redirects >= self._max_redirects:
            return self._lost(now, f"more than {self._max_redirects} redirects")
        url = urljoin(request.url, location)
        try:
            is_same_origin = _origin(url) == _origin(request.url)
        except InvalidConfigError:
            return self._lost(now, f"redirect to an unusable URL {location!r}")
        method, body, headers = request.method, request.body, list(request.headers)
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method, body = "GET", None
            headers = [(n, v) for n, v in headers if n.lower() not in _BODY_FIELDS]
        if not is_same_origin:
            headers = [(n, v) for n, v in headers if n.lower() not in _CREDENTIAL_FIELDS]
        redirects = self._redirects + 1
        self._forget()
        outputs: list[ClientOutput] = [CloseConnection(reason=f"HTTP {status} redirect")]
        outputs += self._open(
            Request(method=method, url=url, headers=tuple(headers), body=body), now
        )
        self._redirects = redirects
        return outputs


@attrs.frozen(kw_only=True)
class IncomingRequest:
    """A request a :class:`ServerConnection` read.

    Attributes:
        method: The method, e.g. ``"GET"``.
        target: The request target (path and query).
        headers: The header fields as str pairs (names lower-cased by h11).
        body: The request body (empty for a GET).
    """

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def path(self) -> str:
        """The target's path, without the query."""
        return urlsplit(self.target).path


@attrs.frozen(kw_only=True)
class Refusal:
    """An error response an event-stream server answers instead of the stream.

    Attributes:
        status: The status code.
        text: The plain-text body.
        headers: Extra header fields.
    """

    status: int
    text: str
    headers: tuple[tuple[str, str], ...] = ()


#: Methods an event-stream server serves: ``GET`` (an EventSource) and ``POST`` (clients that
#: send a body to open the stream).
STREAM_METHODS = ("GET", "POST")

#: Seconds a client refused for being one too many is asked to wait (``Retry-After``).
BUSY_RETRY_AFTER = 5

#: The HTTP versions a :class:`ServerConnection` serves (HTTP/1.0 close-delimited).
_SERVED_VERSIONS = (b"1.1", b"1.0")


class RequestRefused(RemoteProtocolError):
    """:meth:`ServerConnection.receive` refused the request: answer :attr:`refusal` (with
    :meth:`ServerConnection.respond_error`), then close the connection.

    Attributes:
        refusal: The error response. 400 for a malformed request or one whose body framing
            a proxy in front could read differently, 413 for a body past ``max_body_size``,
            431 for a head past ``max_head_size``, 501 for a transfer coding other than
            chunked, 505 for an HTTP version other than 1.1 and 1.0.
    """

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"{refusal.status}: {refusal.text.rstrip()}")
        self.refusal = refusal


def _refused(status: int, text: str) -> RequestRefused:
    return RequestRefused(Refusal(status=status, text=text + "\n"))


def _check_head(head: h11.Request) -> None:
    """Refuse a request head an event-stream server must not serve.

    Raises:
        RequestRefused: another HTTP version (505), or framing a proxy could read
            differently (400).
    """
    version = head.http_version
    if version not in _SERVED_VERSIONS:
        # RFC 9110 section 15.6.6: say why, and what is supported. This also answers the
        # HTTP/2 connection preface ("PRI * HTTP/2.0"), which h11 reads as a request head.
        text = (
            f"HTTP/{version.decode('ascii')} is not supported; this server speaks HTTP/1.1"
            " and HTTP/1.0"
        )
        raise _refused(505, text)
    names = {name for name, _ in head.headers}
    if b"transfer-encoding" in names:
        # Transfer-Encoding with Content-Length "ought to be handled as an error" (RFC 9112
        # section 6.3: request smuggling when a proxy in front reads the other one); a
        # server "MAY reject" it and "MUST close the connection after responding" (6.1). In
        # an HTTP/1.0 request the framing is faulty, "even if a Content-Length is present"
        # (6.1). (h11 refuses conflicting Content-Length values itself, with 400.)
        if b"content-length" in names:
            raise _refused(400, "bad HTTP request: Transfer-Encoding with Content-Length")
        if version == b"1.0":
            raise _refused(400, "bad HTTP request: Transfer-Encoding in an HTTP/1.0 request")


def refusal_for(
    request: IncomingRequest,
    *,
    path: str | None,
    is_available: bool,
    retry_after: int = BUSY_RETRY_AFTER,
) -> Refusal | None:
    """Whether an event-stream server refuses ``request``, and how.

    Args:
        request: The request read.
        path: The only path served, or ``None`` for every path.
        is_available: Whether the server takes another client (not full, not closing).
        retry_after: Whole seconds a client refused with 503 is asked to wait.

    Returns:
        ``None`` to serve the stream; otherwise 404 for another path, 405 (with ``Allow``)
        for another method, 503 (with ``Retry-After``) when the server is not available.
    """
    if path is not None and request.path != path:
        return Refusal(status=404, text="not found\n")
    if request.method not in STREAM_METHODS:
        allow = ", ".join(STREAM_METHODS)
        return Refusal(status=405, text="method not allowed\n", headers=(("Allow", allow),))
    if not is_available:
        return Refusal(
            status=503,
            text="event stream unavailable, try again later\n",
            headers=(("Retry-After", str(retry_after)),),
        )
    return None


class ServerConnection:
    """One HTTP/1.1 connection of an event-stream server: read one request, write the stream.

    Feed it bytes with :meth:`receive` until it returns the :class:`IncomingRequest`, then
    turn the session's actions into bytes with :meth:`respond` (or answer with
    :meth:`respond_error`). One request per connection: an event stream never ends on its
    own, and after an error response the connection closes.

    HTTP/1.1 and HTTP/1.0 requests are served (the stream chunked, or close-delimited for
    HTTP/1.0). :meth:`receive` refuses, with :exc:`RequestRefused`: any other version with
    505 (RFC 9110 section 15.6.6; the HTTP/2 connection preface too), a request with both
    ``Transfer-Encoding`` and ``Content-Length`` or an HTTP/1.0 request with
    ``Transfer-Encoding`` with 400 (RFC 9112 section 6.1), and what h11 refuses (400;
    431 for a head too big; 501 for a transfer coding other than chunked). Identical
    repeated ``Content-Length`` values are read as one (RFC 9110 section 8.6 allows it);
    different ones get 400.

    Args:
        max_head_size: The largest request head accepted, in bytes.
        max_body_size: The largest request body accepted, in bytes.

    Raises:
        InvalidConfigError: a bad argument.
    """

    __slots__ = (
        "_body",
        "_h11",
        "_head",
        "_is_body_open",
        "_is_chunked",
        "_is_close_delimited",
        "_is_encoded",
        "_is_head_sent",
        "_max_body_size",
        "_refused",
        "_request",
    )

    def __init__(self, *, max_head_size: int = 16 * 1024, max_body_size: int = 64 * 1024) -> None:
        if type(max_head_size) is not int or max_head_size < 1024:
            raise InvalidConfigError(f"max_head_size must be an int >= 1024, got {max_head_size!r}")
        if type(max_body_size) is not int or max_body_size < 0:
            raise InvalidConfigError(f"max_body_size must be an int >= 0, got {max_body_size!r}")
        # Let go of once a chunked or close-delimited body begins (its framing is ours from
        # there on: RFC 9112 sections 7.1 and 6.3), so that an idle stream keeps less memory.
        self._h11: h11.Connection | None = h11.Connection(
            h11.SERVER, max_incomplete_event_size=max_head_size
        )
        self._max_body_size = max_body_size
        self._head: h11.Request | None = None
        self._body = bytearray()
        self._request: IncomingRequest | None = None
        self._refused: RequestRefused | None = None
        self._is_head_sent = False
        # How the body goes out once the head is sent: in chunks (HTTP/1.1), as it is (HTTP/1.0,
        # the end of the body is the connection's close), or else through h11 (a body with a
        # Content-Length of its own). Both fast ways frame here; h11 checks the head.
        self._is_body_open = False  # the head went out with a body to come, not ended yet
        self._is_chunked = False
        self._is_close_delimited = False
        self._is_encoded = False  # Content-Encoding (gzip): every piece is this client's own

    @property
    def request(self) -> IncomingRequest | None:
        """The request, once read."""
        return self._request

    def receive(self, data: bytes) -> IncomingRequest | None:
        """Feed bytes from the client (``b""`` at end of file).

        Returns:
            The request once it is complete (once only), else ``None``.

        Raises:
            RequestRefused: the bytes are not a request this server serves: answer its
                :attr:`~RequestRefused.refusal` and close (or just close when the client is
                gone). Every later call raises it again.
        """
        if self._refused is not None:
            raise self._refused
        if self._request is not None:
            return None  # the stream is being served; what the client sends is ignored
        try:
            return self._read(data)
        except RequestRefused as error:
            self._refused = error
            raise

    def _read(self, data: bytes) -> IncomingRequest | None:
        connection = self._h11
        assert connection is not None  # let go of only once a request was read
        try:
            connection.receive_data(data)
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return None
                if isinstance(event, h11.Request):
                    _check_head(event)
                    self._head = event
                elif isinstance(event, h11.Data):
                    if len(self._body) + len(event.data) > self._max_body_size:
                        raise _refused(
                            413, f"request body over max_body_size={self._max_body_size}"
                        )
                    self._body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    head = self._head
                    assert head is not None
                    self._request = IncomingRequest(
                        method=_text(head.method),
                        target=_text(head.target),
                        headers=tuple((_text(n), _text(v)) for n, v in head.headers),
                        body=bytes(self._body),
                    )
                    return self._request
                elif isinstance(event, h11.ConnectionClosed):
                    raise _refused(400, "the client closed before sending a request")
        except h11.RemoteProtocolError as error:
            # h11's hint: 400, 431 (head too big) or 501 (a transfer coding it cannot read).
            raise _refused(error.error_status_hint, f"bad HTTP request: {error}") from error

    def respond(self, actions: Sequence[Action]) -> tuple[bytes, bool]:
        """Bytes for a server session's actions.

        Returns:
            The bytes to write, and whether the connection must then be closed (a
            :class:`~sse_core.Disconnect` was among the actions).

        Raises:
            LocalProtocolError: no request was read, or a client action was passed.
        """
        if self._request is None:
            raise LocalProtocolError("respond() before the request was read")
        parts: list[bytes] = []
        body: list[bytes] = []  # a run of Send data, written as one chunk
        is_done = False
        for action in actions:
            if isinstance(action, Send):
                if action.data:
                    body.append(action.data)
                continue
            if body:
                parts.append(self._body_bytes(body))
                body = []
            if isinstance(action, SendHead):
                parts.append(self._send_head(action))
            elif isinstance(action, Disconnect):
                parts.append(self._end())
                is_done = True
                break
            else:
                raise LocalProtocolError(f"respond() takes server actions, got {action!r}")
        if body:
            parts.append(self._body_bytes(body))
        return b"".join(parts), is_done

    def take_from(self, subscriber: Subscriber | Poller, now: float) -> tuple[list[bytes], bool]:
        """Take what a broadcaster's subscriber (or poll) has queued, as response bytes.

        The fan-out's hot path: once the head is out, the events and heartbeats queued for
        a stream (:meth:`~sse_core.state.Subscriber.take_bytes`) are framed here without
        h11: as they are for a close-delimited HTTP/1.0 body, as one chunk (RFC 9112
        section 7.1) for HTTP/1.1. An uncompressed event is framed once for every
        connection that takes it alone (a client that keeps up): the chunk is the same
        bytes object for all of them. Anything else (the head, a replay step, the end) goes
        through :meth:`respond`; either way the bytes are those :meth:`respond` would
        write.

        Args:
            subscriber: The connection's subscriber or poll.
            now: The current monotonic time.

        Returns:
            The pieces to write, in order (write them with one system call where the
            platform can: ``writelines``, ``sendmsg``), and whether the connection must then
            be closed.

        Raises:
            LocalProtocolError: no request was read.
            ClockError: ``now`` is earlier than a previous ``now`` of the subscriber.
        """
        if self._is_body_open:
            pieces = subscriber.take_bytes(now)
            if pieces is not None:
                if self._is_close_delimited:
                    return pieces, False
                if self._is_chunked and len(pieces) == 1:
                    piece = pieces[0]
                    chunk = _chunk_of(piece) if self._is_encoded else _shared_chunk_of(piece)
                    return [chunk], False
                # Several events a client fell behind by: one chunk of its own.
                return [self._body_bytes(pieces)], False
        data, is_done = self.respond(subscriber.take(now))
        return ([data] if data else []), is_done

    def frame_shared(self, data: bytes) -> bytes:
        """``data``, stream bytes that many connections send (a
        :class:`~sse_core.state.Fanout`'s), as this connection's body writes them: one chunk
        for HTTP/1.1 (RFC 9112 section 7.1), the same object for every connection that
        frames the same ``data`` object; as it is for a close-delimited HTTP/1.0 body.

        Raises:
            LocalProtocolError: the body is not open (no head sent, or it ended).
        """
        if not self._is_body_open:
            raise LocalProtocolError("cannot send stream bytes: the response body is not open")
        if self._is_chunked:
            return _shared_chunk_of(data)
        if self._is_close_delimited:
            return data
        return self._send(h11.Data(data=data))

    def respond_error(
        self, status: int, text: str, headers: Sequence[tuple[str, str]] = ()
    ) -> bytes:
        """A complete plain-text response (e.g. 404, 503), after which the connection closes.

        Returns ``b""`` when a response was already started.

        Raises:
            LocalProtocolError: h11 refuses the status or a header field.
        """
        connection = self._h11
        if (
            self._is_head_sent
            or connection is None
            or connection.our_state not in (h11.IDLE, h11.SEND_RESPONSE)
        ):
            return b""
        body = text.encode("utf-8")
        fields = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
            *headers,
        ]
        head = self._send(h11.Response(status_code=status, headers=fields, reason=_reason(status)))
        self._is_head_sent = True
        if self._head is not None and self._head.method == b"HEAD":
            # A response to HEAD has no body (RFC 9110 section 9.3.2); h11 refuses one.
            return head + self._send(h11.EndOfMessage())
        return b"".join([head, self._send(h11.Data(data=body)), self._send(h11.EndOfMessage())])

    def _send_head(self, action: SendHead) -> bytes:
        head, connection = self._head, self._h11
        if self._is_head_sent or head is None or connection is None:
            raise LocalProtocolError("cannot send Response: the response head was sent already")
        headers = list(action.headers)
        # The body is chunked when h11 would choose it (HTTP/1.1, a response with a body
        # and no framing of its own); saying so in the head pins h11 to it, and the chunks
        # are then framed here (RFC 9112 section 7.1) -- h11 costs ~10x more per write.
        self._is_chunked = (
            head.http_version == b"1.1"
            and head.method != b"HEAD"
            and action.status >= 200
            and action.status not in (204, 304)
            and not any(
                name.lower() in ("content-length", "transfer-encoding") for name, _ in headers
            )
        )
        if self._is_chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        data = self._send(h11.Response(
            status_code=action.status, headers=headers, reason=_reason(action.status)
        ))
        self._is_head_sent = True
        self._is_body_open = connection.our_state is h11.SEND_BODY
        # HTTP/1.0 with no length of its own: h11 would write the body as it is, ended by
        # the close (RFC 9112 section 6.3, the last rule).
        self._is_close_delimited = (
            not self._is_chunked
            and head.http_version == b"1.0"
            and head.method != b"HEAD"
            and action.status >= 200
            and action.status not in (204, 304)
            and not any(
                name.lower() in ("content-length", "transfer-encoding") for name, _ in headers
            )
        )
        self._is_encoded = any(name.lower() == "content-encoding" for name, _ in headers)
        self._head = None
        if self._is_chunked or self._is_close_delimited:
            self._h11 = None
        return data

    def _end(self) -> bytes:
        """The end of the body, if it is open: the last chunk (RFC 9112 section 7.1), nothing
        for a close-delimited body (the close ends it), or what h11 writes."""
        if not self._is_body_open:
            return b""
        if self._h11 is None:
            self._is_body_open = False
            return b"0\r\n\r\n" if self._is_chunked else b""
        return self._send(h11.EndOfMessage())

    def _body_bytes(self, body: list[bytes]) -> bytes:
        """One piece of the response body, framed (nothing before the head or after the
        end)."""
        if not self._is_body_open:
            return b""
        data = b"".join(body)
        if self._is_chunked:
            return _chunk_of(data) if self._is_encoded else _shared_chunk_of(data)
        if self._is_close_delimited:
            return data
        return self._send(h11.Data(data=data))

    def _send(self, event: h11.Event) -> bytes:
        connection = self._h11
        assert connection is not None  # let go of only where the body's framing is ours
        try:
            data = connection.send(event) or b""
        except h11.LocalProtocolError as error:
            self._is_body_open = False
            raise LocalProtocolError(f"cannot send {type(event).__name__}: {error}") from error
        if type(event) is h11.EndOfMessage:
            self._is_body_open = False
        return data


def _chunk_of(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body (RFC 9112 section 7.1); nothing for no data
    (an empty chunk would end the body)."""
    return b"%x\r\n%b\r\n" % (len(data), data) if data else b""


# The last bytes object framed by _shared_chunk_of, and its chunk. A publish hands the same
# bytes object to every stream that is keeping up, so one framing serves them all: a hit is one
# identity comparison (the memo holds a reference, so the object cannot be another one with
# its id). Heartbeats, the other bytes many streams share, have their chunk made once.
_last_chunk: tuple[bytes, bytes] = (b"", b"")
_HEARTBEAT_CHUNK = _chunk_of(HEARTBEAT)


def _shared_chunk_of(data: bytes) -> bytes:
    """:func:`_chunk_of` for bytes many connections send (published events): the same
    chunk object for the same ``data`` object, framed once."""
    global _last_chunk
    last = _last_chunk  # one read: another thread's server may replace it meanwhile
    if last[0] is data:
        return last[1]
    if data is HEARTBEAT:
        return _HEARTBEAT_CHUNK
    chunk = _chunk_of(data)
    _last_chunk = (data, chunk)
    return chunk
