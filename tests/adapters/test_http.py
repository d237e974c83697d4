"""Tests of the sans-IO HTTP/1.1 glue: HTTPClient and ServerConnection, bytes in, bytes out.

No sockets: responses are written by hand and fed in, requests are parsed back with an h11
server connection.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from typing import Any

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sse_core import (
    Broadcaster,
    ClientConfig,
    ClientSession,
    ClientState,
    Deliver,
    Disconnect,
    Event,
    InvalidConfigError,
    LocalProtocolError,
    Parser,
    RemoteProtocolError,
    ReportFailure,
    ReportStatus,
    Send,
    SendHead,
    ServerConfig,
    ServerSession,
)
from sse_core.adapters import (
    REDIRECT_STATUSES,
    CloseConnection,
    Endpoint,
    HTTPClient,
    IncomingRequest,
    OpenConnection,
    Refusal,
    RequestRefused,
    ServerConnection,
    Write,
    endpoint_of,
)
from sse_core.state import (
    GAP_EVENT_TYPE,
    POSITION_EVENT_TYPE,
    ReplayConfig,
    ReplayLog,
    Subscriber,
)
from sse_core.testing.strategies import chunkings, events, streams

URL = "http://example.com/events"
EVENT_STREAM = ("Content-Type", "text/event-stream")

# --- helpers ---------------------------------------------------------------------------------


def make_client(url: str = URL, **kwargs: Any) -> HTTPClient:
    """An HTTPClient over a fresh session; ``kwargs`` split between the two."""
    http_kwargs = {
        name: kwargs.pop(name)
        for name in ("max_redirects", "connect_timeout", "max_head_size")
        if name in kwargs
    }
    session = ClientSession(ClientConfig(url=url, **kwargs), rng=random.Random(7))
    return HTTPClient(session, **http_kwargs)


def parse_request(data: bytes) -> tuple[h11.Request, bytes]:
    """Parse request bytes back with an h11 server; they must hold exactly one request."""
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    head = server.next_event()
    assert isinstance(head, h11.Request)
    body = b""
    while True:
        event = server.next_event()
        if isinstance(event, h11.EndOfMessage):
            break
        assert isinstance(event, h11.Data), event
        body += event.data
    assert server.trailing_data == (b"", False)  # nothing after the request
    return head, body


def fields(request: h11.Request) -> dict[str, str]:
    """The request's fields by lower-cased name."""
    return {name.decode(): value.decode() for name, value in request.headers}


def connect(client: HTTPClient, now: float = 0.0) -> tuple[h11.Request, bytes]:
    """Start (or continue) an attempt up to the request on the wire; return the request."""
    outputs = client.on_connected(now)
    assert len(outputs) == 1 and isinstance(outputs[0], Write)
    return parse_request(outputs[0].data)


def start(client: HTTPClient, now: float = 0.0) -> tuple[h11.Request, bytes]:
    """Start the client and connect; return the request."""
    outputs = client.start(now)
    assert isinstance(outputs[-1], OpenConnection)
    return connect(client, now)


def head(status: int = 200, *headers: tuple[str, str], version: str = "1.1") -> bytes:
    """A response head; the event-stream type by default for 200."""
    if status == 200 and not headers:
        headers = (EVENT_STREAM,)
    lines = [f"HTTP/{version} {status} X"] + [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunked(body: bytes, sizes: Sequence[int] = ()) -> bytes:
    """``body`` in chunked transfer coding, cut after each size in turn (the rest at once)."""
    parts = []
    rest = body
    for size in [*sizes, len(body)]:
        piece, rest = rest[:size], rest[size:]
        if piece:
            parts.append(b"%x\r\n%s\r\n" % (len(piece), piece))
    return b"".join(parts) + b"0\r\n\r\n"


def stream_response(body: bytes) -> bytes:
    """A complete chunked 200 event-stream response."""
    return head(200, EVENT_STREAM, ("Transfer-Encoding", "chunked")) + chunked(body, [5, 1])


def delivered(outputs: Sequence[object]) -> list[Event]:
    return [output.event for output in outputs if isinstance(output, Deliver)]


def states(outputs: Sequence[object]) -> list[ClientState]:
    return [output.state for output in outputs if isinstance(output, ReportStatus)]


def kinds(outputs: Sequence[object]) -> list[str]:
    """Output type names, with the state for status reports."""
    return [
        f"status:{output.state.value}" if isinstance(output, ReportStatus)
        else type(output).__name__
        for output in outputs
    ]


def feed(client: HTTPClient, chunks: Sequence[bytes], now: float = 0.0) -> list[object]:
    outputs: list[object] = []
    for chunk in chunks:
        if chunk:
            outputs += client.on_data(chunk, now)
    return outputs


def redirect(client: HTTPClient, status: int, location: str, now: float = 0.0) -> list[object]:
    """Feed a redirect response with ``location``."""
    return client.on_data(head(status, ("Location", location), ("Content-Length", "0")), now)


BODY = b"id: 1\ndata: one\n\n: comment\ndata: two\ndata: lines\n\n"
EXPECTED = [
    Event(data="one", id="1", last_event_id="1"),
    Event(data="two\nlines", last_event_id="1"),
]

# --- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_redirects": -1},
        {"max_redirects": 1.0},
        {"max_redirects": True},
        {"connect_timeout": 0},
        {"connect_timeout": -1.0},
        {"connect_timeout": float("inf")},
        {"connect_timeout": float("nan")},
        {"connect_timeout": True},
        {"connect_timeout": "5"},
        {"max_head_size": 1023},
        {"max_head_size": 4096.0},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    """Every bad HTTPClient argument raises InvalidConfigError on construction."""
    with pytest.raises(InvalidConfigError):
        make_client(**kwargs)


def test_session_must_be_a_client_session() -> None:
    """Anything but a ClientSession is refused."""
    with pytest.raises(InvalidConfigError):
        HTTPClient(object())  # type: ignore[arg-type]


def test_url_with_a_bad_port_is_refused_at_construction() -> None:
    """A URL the client could never connect to fails when the client is built."""
    with pytest.raises(InvalidConfigError):
        make_client("http://example.com:99999/events")


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://example.com/x", Endpoint(host="example.com", port=80, is_tls=False)),
        ("https://example.com/x", Endpoint(host="example.com", port=443, is_tls=True)),
        ("HTTP://Example.COM:8080", Endpoint(host="example.com", port=8080, is_tls=False)),
        ("https://[::1]:8443/x?y", Endpoint(host="::1", port=8443, is_tls=True)),
        ("http://127.0.0.1:1/", Endpoint(host="127.0.0.1", port=1, is_tls=False)),
    ],
)
def test_endpoint_of(url: str, endpoint: Endpoint) -> None:
    """endpoint_of() gives host (no brackets), port (scheme default) and TLS."""
    assert endpoint_of(url) == endpoint


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "ws://example.com/", "http:///path", "http://h:70000/", "x"]
)
def test_endpoint_of_refuses_unusable_urls(url: str) -> None:
    """Another scheme, no host or a bad port raise InvalidConfigError."""
    with pytest.raises(InvalidConfigError):
        endpoint_of(url)


def test_redirect_statuses_are_fetchs() -> None:
    """The followed statuses are the Fetch standard's redirect statuses."""
    assert frozenset({301, 302, 303, 307, 308}) == REDIRECT_STATUSES


# --- the request -----------------------------------------------------------------------------


def test_start_opens_a_connection_then_writes_the_request() -> None:
    """start() asks for a connection; on_connected() writes one well-formed GET."""
    client = make_client("http://example.com/events?topic=a")
    assert client.url is None
    outputs = client.start(0.0)
    assert outputs == [
        ReportStatus(state=ClientState.CONNECTING, since=0.0),
        OpenConnection(endpoint=Endpoint(host="example.com", port=80, is_tls=False)),
    ]
    assert client.url == "http://example.com/events?topic=a"
    request, body = connect(client)
    assert (request.method, request.target, request.http_version) == (
        b"GET", b"/events?topic=a", b"1.1"
    )
    assert fields(request) == {
        "host": "example.com",
        "accept": "text/event-stream",
        "cache-control": "no-cache",
        "accept-encoding": "gzip",
    }
    assert body == b""


def test_empty_path_becomes_slash() -> None:
    """A URL without a path requests ``/``."""
    request, _ = start(make_client("http://example.com"))
    assert request.target == b"/"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://example.com:8080/e", "example.com:8080"),
        ("http://example.com:80/e", "example.com"),
        ("https://example.com/e", "example.com"),
        ("https://example.com:80/e", "example.com:80"),
        ("http://[::1]:8080/e", "[::1]:8080"),
        ("http://[2001:db8::1]/e", "[2001:db8::1]"),
        ("https://[::1]:443/e", "[::1]"),
    ],
)
def test_host_field(url: str, host: str) -> None:
    """Host carries the port unless it is the scheme's default, IPv6 in brackets."""
    request, _ = start(make_client(url))
    assert fields(request)["host"] == host


def test_post_sends_its_body_with_a_content_length() -> None:
    """A POST session sends its body with Content-Length, and its own fields."""
    client = make_client(method="POST", body=b'{"q": 1}',
                         headers=(("Content-Type", "application/json"),))
    request, body = start(client)
    assert request.method == b"POST"
    assert body == b'{"q": 1}'
    assert fields(request)["content-length"] == "8"
    assert fields(request)["content-type"] == "application/json"


def test_empty_body_is_sent_as_content_length_zero() -> None:
    """``body=b""`` is a body of length zero, not no body."""
    request, body = start(make_client(method="POST", body=b""))
    assert fields(request)["content-length"] == "0"
    assert body == b""


def test_inputs_without_a_connection_are_misuse() -> None:
    """on_connected/on_data/on_eof with nothing open raise LocalProtocolError."""
    client = make_client()
    with pytest.raises(LocalProtocolError):
        client.on_connected(0.0)
    with pytest.raises(LocalProtocolError):
        client.on_data(b"x", 0.0)
    with pytest.raises(LocalProtocolError):
        client.on_eof(0.0)
    client.start(0.0)
    with pytest.raises(LocalProtocolError):
        client.on_data(b"x", 0.0)  # opening, not open
    client.on_connected(0.0)
    with pytest.raises(LocalProtocolError):
        client.on_connected(0.0)  # already connected


# --- response framing ------------------------------------------------------------------------


def run_response(chunks: Sequence[bytes], *, eof: bool = False) -> list[object]:
    client = make_client(dedup=None)
    start(client)
    outputs = feed(client, chunks)
    if eof:
        outputs += client.on_eof(0.0)
    return outputs


END = ["CloseConnection", "status:reconnecting"]


@pytest.mark.parametrize(
    ("response", "eof"),
    [
        (head(200, EVENT_STREAM, ("Transfer-Encoding", "chunked")) + chunked(BODY, [3, 7]), False),
        (head(200, EVENT_STREAM, ("Content-Length", str(len(BODY)))) + BODY, False),
        (head(200, EVENT_STREAM) + BODY, True),  # HTTP/1.1, no length: until EOF
        (head(200, EVENT_STREAM, version="1.0") + BODY, True),
    ],
    ids=["chunked", "content-length", "close-delimited", "http/1.0"],
)
def test_body_framings_give_the_same_events(response: bytes, eof: bool) -> None:
    """Chunked, Content-Length and close-delimited bodies deliver the same events, and the
    end of the body closes the connection and schedules a reconnection."""
    for chunks in ([response], [response[i : i + 1] for i in range(len(response))]):
        outputs = run_response(chunks, eof=eof)
        assert delivered(outputs) == EXPECTED
        assert kinds(outputs) == [
            "status:connected", "status:streaming", "Deliver", "Deliver", *END
        ]
        assert outputs[-2] == CloseConnection(reason="response ended")


def test_a_response_split_at_every_byte_boundary_gives_the_same_outputs() -> None:
    """Cutting a chunked response in two anywhere changes nothing in the outputs."""
    response = stream_response(BODY)
    whole = run_response([response])
    assert delivered(whole) == EXPECTED
    for cut in range(1, len(response)):
        assert run_response([response[:cut], response[cut:]]) == whole, cut


def test_empty_data_is_end_of_file() -> None:
    """on_data(b"") is the same as on_eof()."""
    client = make_client()
    start(client)
    client.on_data(head(200, EVENT_STREAM) + b"data: x\n\n", 0.0)
    assert kinds(client.on_data(b"", 0.0)) == END


def test_data_after_the_body_ended_is_not_read() -> None:
    """Once the body ended the connection is closed: more bytes are misuse, not a stream."""
    client = make_client()
    start(client)
    response = stream_response(BODY)
    outputs = client.on_data(response + b"HTTP/1.1 200 OK\r\n", 0.0)
    assert delivered(outputs) == EXPECTED and kinds(outputs)[-2:] == END
    with pytest.raises(LocalProtocolError):
        client.on_data(b"data: late\n\n", 0.0)


@st.composite
def chunked_responses(draw: st.DrawFn) -> tuple[bytes, list[Event]]:
    stream = draw(streams())
    sizes = draw(st.lists(st.integers(1, 40), max_size=8))
    response = head(200, EVENT_STREAM, ("Transfer-Encoding", "chunked"))
    expected = [item for item in stream.items if isinstance(item, Event)]
    return response + chunked(stream.data, sizes), expected


@given(st.data(), chunked_responses())
def test_chunk_split_invariance(data: st.DataObject, case: tuple[bytes, list[Event]]) -> None:
    """However the network cuts a chunked response (itself cut into random HTTP chunks),
    the outputs are those of the whole response, with every event of the stream."""
    response, expected = case
    whole = run_response([response])
    assert delivered(whole) == expected
    assert kinds(whole)[-2:] == END
    assert run_response(data.draw(chunkings(response))) == whole


def test_informational_responses_are_skipped() -> None:
    """100 Continue and 103 Early Hints before the final head change nothing; the connect
    timeout still waits for the final head."""
    client = make_client(connect_timeout=5.0)
    start(client)
    early = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
    assert client.on_data(early, 1.0) == []
    assert client.next_deadline() == 5.0
    outputs = client.on_data(stream_response(BODY), 2.0)
    assert delivered(outputs) == EXPECTED


# --- status codes ----------------------------------------------------------------------------


def test_refused_body_prefix_is_read_through_h11() -> None:
    """An error status's body reaches the failure report through h11, however it is
    framed, bounded by max_error_body_size: the connection closes once that much came."""
    client = make_client()
    start(client)
    body = b'{"error": {"message": "Incorrect API key provided"}}'
    response = head(401, ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))), ("WWW-Authenticate", "Bearer"))
    assert client.on_data(response + body[:10], 1.0) == []  # the body is being read
    outputs = client.on_data(body[10:], 1.1)
    assert kinds(outputs) == ["CloseConnection", "ReportFailure", "status:closed"]
    failure = outputs[1]
    assert isinstance(failure, ReportFailure)
    assert (failure.status, failure.body) == (401, body)
    assert ("www-authenticate", "Bearer") in failure.headers  # h11 lower-cases names

    bounded = make_client(max_error_body_size=100)
    start(bounded)
    outputs = bounded.on_data(
        head(500, ("Transfer-Encoding", "chunked")) + chunked(b"x" * 1000, [60, 60]), 1.0
    )
    assert kinds(outputs) == ["CloseConnection", "ReportFailure", "status:closed"]
    assert isinstance(outputs[1], ReportFailure) and outputs[1].body == b"x" * 100


@pytest.mark.parametrize(
    "response",
    [
        head(204),
        head(404, ("Content-Length", "0")),
        head(500, ("Content-Length", "0")),
        head(200, ("Content-Type", "text/plain"), ("Content-Length", "0")),
        head(301, ("Content-Length", "0")),  # no Location: not a redirect
        head(304, ("Location", "/other")),  # not a redirect status
    ],
)
def test_refused_responses_close_the_session(response: bytes) -> None:
    """A response that is not an event stream (and not a followed redirect) closes the
    connection and the session: no reconnection is scheduled. Every one but 204 (the
    server's "stop reconnecting") is a failure reported before the CLOSED status."""
    client = make_client()
    start(client)
    outputs = client.on_data(response, 1.0)
    failure = [] if response.startswith(b"HTTP/1.1 204") else ["ReportFailure"]
    assert kinds(outputs) == ["CloseConnection", *failure, "status:closed"]
    assert client.session.state is ClientState.CLOSED
    assert client.next_deadline() is None
    assert client.url is None
    assert client.on_connection_error(2.0, "late") == []
    assert client.close(2.0) == []


def test_retry_status_reconnects() -> None:
    """A status in retry_statuses closes the connection and reconnects with backoff."""
    client = make_client(retry_statuses=frozenset({503}))
    start(client)
    outputs = client.on_data(head(503, ("Content-Length", "0")), 1.0)
    assert kinds(outputs) == END
    deadline = client.next_deadline()
    assert deadline is not None and deadline > 1.0
    assert isinstance(client.on_timer(deadline)[-1], OpenConnection)


# --- redirects -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(REDIRECT_STATUSES))
def test_relative_redirect_is_followed_on_a_new_connection(status: int) -> None:
    """Every redirect status with a Location closes the connection and opens the next one;
    a relative Location is resolved against the request's URL."""
    client = make_client("http://example.com:8080/a/b/events?x=1")
    start(client)
    outputs = redirect(client, status, "../other?y=2")
    assert outputs == [
        CloseConnection(reason=f"HTTP {status} redirect"),
        OpenConnection(endpoint=Endpoint(host="example.com", port=8080, is_tls=False)),
    ]
    assert client.url == "http://example.com:8080/a/other?y=2"
    request, body = connect(client)
    assert (request.method, request.target, body) == (b"GET", b"/a/other?y=2", b"")
    assert fields(request)["host"] == "example.com:8080"
    assert delivered(client.on_data(stream_response(BODY), 0.0)) == EXPECTED


@pytest.mark.parametrize(
    ("location", "url", "endpoint"),
    [
        ("https://other.example/s", "https://other.example/s",
         Endpoint(host="other.example", port=443, is_tls=True)),
        ("//other.example:81/s", "http://other.example:81/s",
         Endpoint(host="other.example", port=81, is_tls=False)),
        ("http://[::1]:9000/s", "http://[::1]:9000/s",
         Endpoint(host="::1", port=9000, is_tls=False)),
    ],
)
def test_redirect_to_another_endpoint(location: str, url: str, endpoint: Endpoint) -> None:
    """An absolute (or scheme-relative) Location opens a connection to its endpoint."""
    client = make_client()
    start(client)
    outputs = redirect(client, 307, location)
    assert outputs[1] == OpenConnection(endpoint=endpoint)
    assert client.url == url


POST_FIELDS = (
    ("Content-Type", "application/json"),
    ("Content-Language", "en"),
    ("X-Trace", "t1"),
)


@pytest.mark.parametrize(
    ("method", "status", "becomes_get"),
    [
        ("POST", 303, True),
        ("POST", 301, True),
        ("POST", 302, True),
        ("POST", 307, False),
        ("POST", 308, False),
        ("PUT", 303, True),
        ("PUT", 301, False),
        ("PUT", 302, False),
        ("HEAD", 303, False),
    ],
)
def test_redirect_method_rewriting(method: str, status: int, becomes_get: bool) -> None:
    """303 (unless HEAD) and 301/302 after POST continue as GET without body and body
    fields; 307/308 (and 301/302 after other methods) keep method, body and fields."""
    has_body = method != "HEAD"
    client = make_client(
        method=method, body=b"{}" if has_body else None, headers=POST_FIELDS,
        last_event_id="41",
    )
    start(client)
    redirect(client, status, "/next")
    request, body = connect(client)
    names = fields(request)
    assert names["x-trace"] == "t1" and names["last-event-id"] == "41"
    if becomes_get:
        assert (request.method, body) == (b"GET", b"")
        assert not {"content-type", "content-language", "content-length"} & set(names)
    else:
        assert request.method == method.encode()
        assert names["content-type"] == "application/json"
        if has_body:
            assert body == b"{}" and names["content-length"] == "2"


CREDENTIALS = (
    ("Authorization", "Bearer secret"),
    ("Cookie", "s=1"),
    ("Proxy-Authorization", "Basic x"),
    ("X-Api-Version", "2"),
)


@pytest.mark.parametrize(
    ("location", "is_kept"),
    [
        ("/same", True),
        ("http://EXAMPLE.com:80/same", True),
        ("http://example.com:81/port", False),
        ("https://example.com/scheme", False),
        ("http://other.example/host", False),
        ("http://sub.example.com/host", False),
    ],
)
def test_credentials_are_not_sent_to_another_origin(location: str, is_kept: bool) -> None:
    """Authorization, Cookie and Proxy-Authorization follow a redirect only within the
    origin (scheme, host, port); other fields always follow."""
    client = make_client(headers=CREDENTIALS)
    start(client)
    redirect(client, 302, location)
    request, _ = connect(client)
    names = fields(request)
    assert names["x-api-version"] == "2"
    for name in ("authorization", "cookie", "proxy-authorization"):
        assert (name in names) is is_kept, name


def test_max_redirects_then_reconnection_starts_over_from_the_session_url() -> None:
    """The redirect past max_redirects fails the attempt (a lost connection, with backoff);
    the reconnection requests the session's URL and may follow max_redirects again."""
    client = make_client("http://example.com/start", max_redirects=2)
    for attempt in range(2):
        now = float(attempt * 100)
        if attempt == 0:
            request, _ = start(client, now)
        else:
            deadline = client.next_deadline()
            assert deadline is not None
            outputs = client.on_timer(deadline)
            assert outputs[-1] == OpenConnection(
                endpoint=Endpoint(host="example.com", port=80, is_tls=False)
            )
            request, _ = connect(client, deadline)
            now = deadline
        assert request.target == b"/start"
        for hop in (1, 2):
            assert kinds(redirect(client, 302, f"/hop{hop}", now)) == [
                "CloseConnection", "OpenConnection"
            ]
            assert connect(client, now)[0].target == f"/hop{hop}".encode()
        outputs = redirect(client, 302, "/hop3", now)
        assert outputs[0] == CloseConnection(reason="more than 2 redirects")
        assert kinds(outputs) == END
        assert client.url is None


def test_max_redirects_zero_follows_none() -> None:
    """With max_redirects=0 the first redirect is a failed attempt."""
    client = make_client(max_redirects=0)
    start(client)
    assert kinds(redirect(client, 307, "/x")) == END


@pytest.mark.parametrize(
    "location", ["ftp://example.com/x", "http://example.com:99999/x", "http://:80/x"]
)
def test_redirect_to_an_unusable_url_fails_the_attempt(location: str) -> None:
    """A Location the client cannot connect to is a failed attempt (reconnect later)."""
    client = make_client()
    start(client)
    outputs = redirect(client, 302, location)
    assert kinds(outputs) == END
    assert isinstance(outputs[0], CloseConnection)
    assert "unusable URL" in outputs[0].reason


# --- connect timeout -------------------------------------------------------------------------


def test_connect_timeout_while_opening() -> None:
    """No connection within connect_timeout: the attempt fails as a lost connection."""
    client = make_client(connect_timeout=5.0)
    client.start(10.0)
    assert client.next_deadline() == 15.0
    assert client.on_timer(14.9) == []
    outputs = client.on_timer(15.0)
    assert outputs[0] == CloseConnection(reason="no response within 5 s")
    assert kinds(outputs) == END
    with pytest.raises(LocalProtocolError):
        client.on_connected(15.0)  # the adapter dropped the attempt


def test_connect_timeout_waiting_for_the_head() -> None:
    """Connected but no response head within connect_timeout: the attempt fails."""
    client = make_client(connect_timeout=5.0)
    start(client, 10.0)
    client.on_data(b"HTTP/1.1 200 OK\r\n", 12.0)  # half a head does not count
    assert kinds(client.on_timer(15.0)) == END


def test_connect_timeout_ends_with_the_head() -> None:
    """Once the head is in, only the session's own deadlines (the stall timeout) remain."""
    client = make_client(connect_timeout=5.0, stall_timeout=60.0)
    start(client, 10.0)
    client.on_data(head(200, EVENT_STREAM), 11.0)
    assert client.next_deadline() == 70.0
    assert client.on_timer(15.0) == []


def test_no_connect_timeout() -> None:
    """connect_timeout=None leaves only the session's stall timeout."""
    client = make_client(connect_timeout=None, stall_timeout=60.0)
    client.start(10.0)
    assert client.next_deadline() == 70.0
    client = make_client(connect_timeout=None, stall_timeout=None)
    client.start(10.0)
    assert client.next_deadline() is None


def test_a_deadline_at_instant_zero_is_still_a_deadline() -> None:
    """The clock's origin is arbitrary: a deadline that falls on 0.0 is reported."""
    client = make_client(connect_timeout=30.0, stall_timeout=45.0)
    client.start(-30.0)
    assert client.next_deadline() == 0.0
    assert kinds(client.on_timer(0.0)) == END


# --- broken connections and bad HTTP ---------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 2OO OK\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Field\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000,  # a head past max_head_size
    ],
)
def test_bad_http_is_a_lost_connection(response: bytes) -> None:
    """A response h11 cannot read fails the attempt; the session reconnects."""
    client = make_client()
    start(client)
    outputs = client.on_data(response, 1.0)
    assert kinds(outputs) == END
    assert isinstance(outputs[0], CloseConnection)
    assert outputs[0].reason.startswith("bad HTTP response")
    assert client.session.state is ClientState.RECONNECTING


def test_eof_before_the_head_is_a_lost_connection() -> None:
    """The server closing before answering fails the attempt."""
    client = make_client()
    start(client)
    assert kinds(client.on_eof(1.0)) == END


def test_truncated_chunked_body_delivers_what_came_then_reconnects() -> None:
    """EOF inside a chunked body: the events already complete are delivered, then the
    connection counts as lost."""
    client = make_client()
    start(client)
    response = stream_response(BODY)[:-7]  # cut inside the final chunks
    outputs = client.on_data(response, 1.0)
    assert delivered(outputs) == EXPECTED
    assert kinds(client.on_eof(1.0)) == END


def test_bad_chunk_after_events() -> None:
    """Events before a malformed chunk are delivered; the bad chunk loses the connection."""
    client = make_client()
    start(client)
    response = head(200, EVENT_STREAM, ("Transfer-Encoding", "chunked"))
    outputs = client.on_data(response + b"b\r\ndata: one\n\n\r\nzz\r\n", 1.0)
    assert delivered(outputs) == [Event(data="one")]
    assert kinds(outputs)[-2:] == END


def test_reconnection_after_eof_carries_last_event_id() -> None:
    """After the body ends the session reconnects to its URL with Last-Event-ID."""
    client = make_client()
    request, _ = start(client)
    assert "last-event-id" not in fields(request)
    outputs = client.on_data(stream_response(b"id: 7\ndata: x\n\nretry: 500\n\n"), 1.0)
    assert kinds(outputs)[-2:] == END
    assert client.url is None
    deadline = client.next_deadline()
    assert deadline is not None and deadline > 1.0
    assert client.on_timer(deadline - 0.01) == []
    outputs = client.on_timer(deadline)
    assert kinds(outputs) == ["status:connecting", "OpenConnection"]
    request, _ = connect(client, deadline)
    assert request.target == b"/events"
    assert fields(request)["last-event-id"] == "7"


@pytest.mark.parametrize("when", ["opening", "waiting", "streaming"])
def test_connection_error_in_flight_reconnects(when: str) -> None:
    """A connection error while opening, waiting or streaming loses the connection."""
    client = make_client()
    client.start(0.0)
    if when != "opening":
        client.on_connected(0.0)
    if when == "streaming":
        client.on_data(head(200, EVENT_STREAM) + b"data: x\n\n", 0.0)
    outputs = client.on_connection_error(1.0, "reset by peer")
    assert outputs[0] == CloseConnection(reason="reset by peer")
    assert outputs[1:] == [
        ReportStatus(state=ClientState.RECONNECTING, since=1.0, reason="reset by peer")
    ]


def test_connection_error_with_nothing_in_flight_is_ignored() -> None:
    """Errors seen before start, while reconnecting or after close change nothing."""
    client = make_client()
    assert client.on_connection_error(0.0, "x") == []
    start(client)
    client.on_eof(1.0)
    assert client.session.state is ClientState.RECONNECTING
    deadline = client.next_deadline()
    assert client.on_connection_error(1.5, "late error of the old socket") == []
    assert client.next_deadline() == deadline
    client.close(2.0)
    assert client.on_connection_error(2.5, "x") == []


# --- close -----------------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["opening", "waiting", "streaming", "after a redirect"])
def test_close_with_a_connection_in_flight(when: str) -> None:
    """close() while opening, waiting, streaming or re-opening after a redirect closes the
    connection and the session, and nothing is scheduled afterwards."""
    client = make_client()
    client.start(0.0)
    if when != "opening":
        client.on_connected(0.0)
    if when == "streaming":
        client.on_data(head(200, EVENT_STREAM) + b"data: x\n\n", 0.0)
    if when == "after a redirect":
        redirect(client, 307, "/next")
    outputs = client.close(1.0)
    assert outputs == [
        CloseConnection(reason="closed by the application"),
        ReportStatus(state=ClientState.CLOSED, since=1.0),
    ]
    assert client.next_deadline() is None
    assert client.url is None
    assert client.close(2.0) == []
    assert client.on_connection_error(2.0, "x") == []


def test_close_before_start_and_while_reconnecting() -> None:
    """close() before start does nothing; while reconnecting it only reports CLOSED."""
    client = make_client()
    assert client.close(0.0) == []
    start(client)
    client.on_eof(1.0)
    assert client.close(2.0) == [ReportStatus(state=ClientState.CLOSED, since=2.0)]
    assert client.next_deadline() is None


def test_stall_of_the_session_closes_the_connection() -> None:
    """The session's stall timeout (a session action) closes the open connection."""
    client = make_client(stall_timeout=10.0, connect_timeout=None)
    start(client)
    client.on_data(head(200, EVENT_STREAM) + b"data: x\n\n", 1.0)
    outputs = client.on_timer(11.0)
    assert isinstance(outputs[0], CloseConnection) and "stalled" in outputs[0].reason
    assert kinds(outputs) == END
    assert client.url is None


# --- ServerConnection ------------------------------------------------------------------------


GET = b"GET /events?topic=a HTTP/1.1\r\nHost: example.com\r\nLast-Event-ID: 5\r\n\r\n"


def test_server_bad_arguments() -> None:
    """Bad ServerConnection limits raise InvalidConfigError."""
    for kwargs in ({"max_head_size": 1000}, {"max_head_size": 2048.0},
                   {"max_body_size": -1}, {"max_body_size": True}):
        with pytest.raises(InvalidConfigError):
            ServerConnection(**kwargs)


def test_server_reads_one_request_whole_and_byte_by_byte() -> None:
    """receive() returns the request once it is complete, and only once."""
    expected = IncomingRequest(
        method="GET", target="/events?topic=a",
        headers=(("host", "example.com"), ("last-event-id", "5")), body=b"",
    )
    connection = ServerConnection()
    assert connection.request is None
    assert connection.receive(GET) == expected
    assert connection.request == expected
    assert expected.path == "/events"
    assert connection.receive(b"GET / HTTP/1.1\r\n\r\n") is None  # ignored afterwards
    connection = ServerConnection()
    results = [connection.receive(GET[i : i + 1]) for i in range(len(GET))]
    assert results == [None] * (len(GET) - 1) + [expected]


@pytest.mark.parametrize(
    "body_framing",
    [
        b"Content-Length: 11\r\n\r\nhello world",
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    ],
)
def test_server_reads_a_post_body(body_framing: bytes) -> None:
    """A POST body (Content-Length or chunked) comes with the request."""
    data = b"POST /events HTTP/1.1\r\nHost: h\r\n" + body_framing
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        connection = ServerConnection()
        results = [connection.receive(chunk) for chunk in chunks]
        request = results[-1]
        assert request is not None and results[:-1] == [None] * (len(results) - 1)
        assert (request.method, request.path, request.body) == ("POST", "/events", b"hello world")


def test_server_head_too_big() -> None:
    """A request head past max_head_size is refused with 431 (a RemoteProtocolError)."""
    connection = ServerConnection(max_head_size=1024)
    with pytest.raises(RemoteProtocolError) as raised:
        connection.receive(b"GET / HTTP/1.1\r\nX: " + b"a" * 2000)
    assert isinstance(raised.value, RequestRefused) and raised.value.refusal.status == 431
    # At the limit it is fine.
    connection = ServerConnection(max_head_size=1024)
    request = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 900 + b"\r\n\r\n"
    assert connection.receive(request) is not None


@pytest.mark.parametrize(
    "body_framing",
    [
        b"Content-Length: 11\r\n\r\nhello world",
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    ],
)
def test_server_body_too_big(body_framing: bytes) -> None:
    """A request body past max_body_size is refused with 413; at the limit it is read."""
    data = b"POST / HTTP/1.1\r\nHost: h\r\n" + body_framing
    with pytest.raises(RequestRefused) as raised:
        ServerConnection(max_body_size=10).receive(data)
    assert raised.value.refusal.status == 413
    assert ServerConnection(max_body_size=11).receive(data) is not None


def parse_response(data: bytes, *, method: bytes = b"GET", eof: bool = False) -> tuple[
    h11.Response, bytes, bool
]:
    """Parse response bytes with an h11 client: (head, body, whether the body ended)."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("Host", "h")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    if eof:
        client.receive_data(b"")
    response = client.next_event()
    assert isinstance(response, h11.Response)
    body, is_ended = b"", False
    while True:
        event = client.next_event()
        if isinstance(event, h11.Data):
            body += event.data
        else:
            is_ended = isinstance(event, h11.EndOfMessage)
            break
    return response, body, is_ended


def test_server_garbage_gets_a_400() -> None:
    """Garbage is refused with 400, and respond_error() writes a whole 400 that closes."""
    connection = ServerConnection()
    with pytest.raises(RequestRefused) as raised:
        connection.receive(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")  # TLS hello
    assert raised.value.refusal.status == 400
    data = connection.respond_error(400, "bad request\n")
    response, body, is_ended = parse_response(data)
    assert response.status_code == 400
    assert body == b"bad request\n" and is_ended
    response_fields = {n.decode(): v.decode() for n, v in response.headers}
    assert response_fields["connection"] == "close"
    assert response_fields["content-type"] == "text/plain; charset=utf-8"
    assert connection.respond_error(400, "again") == b""  # one response only


def refused(data: bytes) -> list[Refusal]:
    """The refusal ServerConnection gives for ``data`` fed whole and byte by byte (each way
    must refuse, and a later call must refuse again)."""
    refusals = []
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        connection = ServerConnection()
        with pytest.raises(RequestRefused) as raised:
            for chunk in chunks:
                assert connection.receive(chunk) is None
        with pytest.raises(RequestRefused) as again:
            connection.receive(b"GET /events HTTP/1.1\r\nHost: h\r\n\r\n")
        assert again.value is raised.value
        refusal = raised.value.refusal
        response, body, is_ended = parse_response(
            connection.respond_error(refusal.status, refusal.text, refusal.headers)
        )
        assert (response.status_code, body, is_ended) == (
            refusal.status, refusal.text.encode(), True
        )
        assert (b"connection", b"close") in response.headers
        refusals.append(refusal)
    assert refusals[0] == refusals[1]
    return refusals[:1]


H2_SETTINGS_FRAME = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64"


@pytest.mark.parametrize(
    "data",
    [
        b"GET /events HTTP/2.0\r\nHost: h\r\n\r\n",
        b"GET /events HTTP/1.2\r\nHost: h\r\n\r\n",
        b"GET /events HTTP/0.9\r\nHost: h\r\n\r\n",
        b"GET /events HTTP/3.0\r\nHost: h\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # the HTTP/2 connection preface
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + H2_SETTINGS_FRAME,  # as h2 clients send it
        b"POST /events HTTP/2.0\r\nHost: h\r\nContent-Length: 100\r\n\r\n",  # no body yet
    ],
)
def test_server_refuses_other_http_versions_with_505(data: bytes) -> None:
    """Any version but HTTP/1.1 and HTTP/1.0 -- the HTTP/2 preface included -- is refused at
    the head with 505, saying what is supported (RFC 9110 section 15.6.6)."""
    (refusal,) = refused(data)
    version = data.split(b"\r\n")[0].rsplit(b"/", 1)[1].decode()
    assert refusal.status == 505
    assert refusal.text == (
        f"HTTP/{version} is not supported; this server speaks HTTP/1.1 and HTTP/1.0\n"
    )


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_server_serves_http_1_1_and_1_0(version: bytes) -> None:
    """HTTP/1.1 and HTTP/1.0 requests are read."""
    connection = ServerConnection()
    request = connection.receive(b"GET /events HTTP/" + version + b"\r\nHost: h\r\n\r\n")
    assert request is not None and request.path == "/events"


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (b"POST /events HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         400, "Transfer-Encoding with Content-Length"),
        (b"POST /events HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
         b"Content-Length: 5\r\n\r\nhello",
         400, "Transfer-Encoding with Content-Length"),
        (b"GET /events HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
         b"Content-Length: 0\r\n\r\n0\r\n\r\n",
         400, "Transfer-Encoding with Content-Length"),
        (b"POST /events HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         400, "Transfer-Encoding in an HTTP/1.0 request"),
        # h11's own refusals, with its status hints.
        (b"POST /events HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
         b"Content-Length: 6\r\n\r\nhello",
         400, "conflicting Content-Length"),
        (b"POST /events HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\nhello",
         400, "conflicting Content-Length"),
        (b"POST /events HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello",
         400, "bad Content-Length"),
        (b"POST /events HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
         501, "Only Transfer-Encoding: chunked"),
        (b"POST /events HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         501, "multiple Transfer-Encoding"),
    ],
)
def test_server_refuses_ambiguous_framing(data: bytes, status: int, reason: str) -> None:
    """Framing a proxy in front could read differently is refused at the head, before any
    body byte is read (RFC 9112 sections 6.1 and 6.3), as is what h11 refuses."""
    (refusal,) = refused(data)
    assert refusal.status == status
    assert reason in refusal.text


@pytest.mark.parametrize(
    "lengths", [b"Content-Length: 5\r\nContent-Length: 5\r\n", b"Content-Length: 5, 5\r\n"]
)
def test_server_reads_identical_repeated_content_lengths_as_one(lengths: bytes) -> None:
    """The same Content-Length value repeated is read as that one value (RFC 9110 section
    8.6 lets a recipient do so; h11 does)."""
    connection = ServerConnection()
    request = connection.receive(b"POST /events HTTP/1.1\r\nHost: h\r\n" + lengths
                                 + b"\r\nhello")
    assert request is not None and request.body == b"hello"
    assert [v for n, v in request.headers if n == "content-length"] == ["5"]


def test_request_refused_is_a_remote_protocol_error() -> None:
    """RequestRefused is in the one exception tree and carries its refusal."""
    refusal = Refusal(status=505, text="no\n")
    error = RequestRefused(refusal)
    assert isinstance(error, RemoteProtocolError)
    assert error.refusal is refusal and str(error) == "505: no"


def test_server_eof_before_a_request() -> None:
    """EOF before a whole request is a RemoteProtocolError; no response can be written."""
    connection = ServerConnection()
    with pytest.raises(RemoteProtocolError):
        connection.receive(b"")
    assert connection.respond_error(400, "x") == b""
    connection = ServerConnection()
    connection.receive(b"GET / HTTP/1.1\r\n")
    with pytest.raises(RemoteProtocolError):
        connection.receive(b"")


def test_server_respond_error_before_a_whole_request() -> None:
    """An error response (say 408) can be written before a whole request came."""
    for received in (b"", b"GET /events HTTP/1.1\r\n"):
        connection = ServerConnection()
        if received:
            assert connection.receive(received) is None
        response, body, is_ended = parse_response(connection.respond_error(408, "too slow"))
        assert (response.status_code, body, is_ended) == (408, b"too slow", True)


def test_server_respond_error_with_fields() -> None:
    """respond_error() adds the given fields (503 with Retry-After)."""
    connection = ServerConnection()
    connection.receive(GET)
    data = connection.respond_error(503, "busy", [("Retry-After", "5")])
    response, body, _ = parse_response(data)
    assert response.status_code == 503 and body == b"busy"
    assert (b"retry-after", b"5") in response.headers


def test_server_respond_before_the_request_is_misuse() -> None:
    """respond() before the request was read raises LocalProtocolError."""
    with pytest.raises(LocalProtocolError):
        ServerConnection().respond([SendHead(status=200, headers=())])


def test_server_respond_refuses_client_actions() -> None:
    """respond() takes server actions only."""
    connection = ServerConnection()
    connection.receive(GET)
    with pytest.raises(LocalProtocolError):
        connection.respond([Deliver(event=Event(data="x"))])


def test_server_stream_is_chunked_for_http_1_1() -> None:
    """For HTTP/1.1 the stream is chunked; Disconnect ends the body and asks to close;
    respond_error() after the head writes nothing."""
    connection = ServerConnection()
    connection.receive(GET)
    head_bytes, is_done = connection.respond(
        [SendHead(status=200, headers=(EVENT_STREAM,)), Send(data=b""), Send(data=b"data: 1\n\n")]
    )
    assert not is_done
    assert connection.respond_error(500, "x") == b""
    more, is_done = connection.respond([Send(data=b"data: 2\n\n")])
    assert not is_done and more == b"9\r\ndata: 2\n\n\r\n"
    end, is_done = connection.respond(
        [Disconnect(reason="bye"), Send(data=b"data: after\n\n")]
    )
    assert is_done and end == b"0\r\n\r\n"
    response, body, is_ended = parse_response(head_bytes + more + end)
    assert (b"transfer-encoding", b"chunked") in response.headers
    assert body == b"data: 1\n\ndata: 2\n\n" and is_ended


def test_server_writes_a_run_of_sends_as_one_chunk() -> None:
    """Sends queued together go out as one chunk (one write per flush, whatever the
    number of events), which an HTTP/1.1 client reads back whole."""
    connection = ServerConnection()
    connection.receive(GET)
    data, is_done = connection.respond([
        SendHead(status=200, headers=(EVENT_STREAM,)),
        Send(data=b"data: 1\n\n"), Send(data=b""), Send(data=b"data: 22\n\n"),
        Send(data=b"data: 333\n\n"),
    ])
    assert not is_done
    head, _, chunks = data.partition(b"\r\n\r\n")
    assert head.lower().count(b"transfer-encoding: chunked") == 1
    assert chunks == b"1e\r\ndata: 1\n\ndata: 22\n\ndata: 333\n\n\r\n"
    end, is_done = connection.respond([Send(data=b"data: 4\n\n"), Disconnect(reason="x")])
    assert is_done and end == b"9\r\ndata: 4\n\n\r\n0\r\n\r\n"
    _, body, is_ended = parse_response(data + end)
    assert body == b"data: 1\n\ndata: 22\n\ndata: 333\n\ndata: 4\n\n" and is_ended


@pytest.mark.parametrize(
    ("request_bytes", "head", "body"),
    [
        # A head that frames its own body: h11 keeps to its Content-Length.
        (GET, SendHead(status=200, headers=(("Content-Length", "5"),)), b"hello"),
        # No body for a HEAD request, nor for a 204.
        (b"HEAD /events HTTP/1.1\r\nHost: h\r\n\r\n", SendHead(status=200, headers=()), b""),
        (GET, SendHead(status=204, headers=()), b""),
    ],
)
def test_server_leaves_other_framings_to_h11(
    request_bytes: bytes, head: SendHead, body: bytes
) -> None:
    """Only a body h11 would chunk is framed by ServerConnection; otherwise h11 frames it
    (and refuses bytes the response cannot carry)."""
    connection = ServerConnection()
    connection.receive(request_bytes)
    data, _ = connection.respond([head])
    if body:
        assert b"chunked" not in data.lower()
        more, _ = connection.respond([Send(data=body)])
        end, is_done = connection.respond([Disconnect(reason="x")])
        assert more == body and end == b"" and is_done
    else:
        with pytest.raises(LocalProtocolError):
            connection.respond([Send(data=b"x")])


def test_server_stream_is_close_delimited_for_http_1_0() -> None:
    """For HTTP/1.0 the body is delimited by closing the connection."""
    connection = ServerConnection()
    connection.receive(b"GET /events HTTP/1.0\r\n\r\n")
    data, is_done = connection.respond(
        [SendHead(status=200, headers=(EVENT_STREAM,)), Send(data=b"data: 1\n\n")]
    )
    end, is_done = connection.respond([Disconnect(reason="bye")])
    assert is_done and end == b""
    assert b"chunked" not in data.lower()
    response, body, is_ended = parse_response(data, eof=True)
    assert (b"connection", b"close") in response.headers
    assert body == b"data: 1\n\n" and is_ended


def test_server_disconnect_before_the_head() -> None:
    """A Disconnect with no head sent writes nothing and asks to close."""
    connection = ServerConnection()
    connection.receive(GET)
    assert connection.respond([Disconnect(reason="x")]) == (b"", True)


# --- end to end in memory --------------------------------------------------------------------


@given(
    st.lists(events(), max_size=8),
    st.booleans(),
    st.sampled_from([None, 0, 1500]),
    st.integers(0, 300),
    st.data(),
)
def test_server_connection_to_http_client_delivers_what_the_server_sent(
    sent: list[Event], is_gzip: bool, retry: int | None, padding: int, data: st.DataObject
) -> None:
    """A ServerSession's actions through ServerConnection.respond(), cut anywhere, read by
    HTTPClient: the client gets exactly the events sent, then the end of the stream. (Events
    of the library's reserved types -- the gap signal, the position block -- are signals the
    client acts on, not events it delivers: they are left out of what is sent.)"""
    sent = [event for event in sent if event.event not in (GAP_EVENT_TYPE, POSITION_EVENT_TYPE)]
    client = make_client(dedup=None, connect_timeout=None)
    client.start(0.0)
    request_bytes = client.on_connected(0.0)[0]
    assert isinstance(request_bytes, Write)
    server = ServerConnection()
    request = server.receive(request_bytes.data)
    assert request is not None
    session = ServerSession(ServerConfig(
        heartbeat_interval=None, is_compression_enabled=is_gzip, retry=retry, padding=padding,
    ))
    wire = [server.respond(session.on_request(request.target, request.headers, 0.0))[0]]
    for event in sent:
        wire.append(server.respond(session.send(event, 0.0))[0])
    end, is_done = server.respond(session.close(0.0))
    assert is_done
    response = b"".join([*wire, end])
    assert (b"Content-Encoding: gzip" in response) is is_gzip

    outputs = feed(client, data.draw(chunkings(response)))
    last_event_id = ""
    expected = []
    for event in sent:
        if event.id is not None:
            last_event_id = event.id
        expected.append(Event(data=event.data, event=event.event, id=event.id,
                              last_event_id=last_event_id))
    assert delivered(outputs) == expected
    assert kinds(outputs)[-2:] == END
    assert outputs[-2] == CloseConnection(reason="response ended")


# --- the fan-out's hot path: take_from() ------------------------------------------------------


def fan_out(versions: Sequence[bytes], headers: Sequence[tuple[str, str]] = (), **kwargs: Any
            ) -> tuple[Broadcaster, list[tuple[ServerConnection, Subscriber]]]:
    """A broadcaster whose subscribers were each read from a request of one of ``versions``
    (with ``headers``), their heads not taken yet."""
    hub = Broadcaster(ReplayLog(ReplayConfig(epoch="f")), **kwargs)
    streams = []
    for version in versions:
        connection = ServerConnection()
        extra = b"".join(b"%s: %s\r\n" % (n.encode(), v.encode()) for n, v in headers)
        request = connection.receive(b"GET /events HTTP/" + version + b"\r\nHost: h\r\n"
                                     + extra + b"\r\n")
        assert request is not None
        subscriber = hub.subscribe(request.target, request.headers, now=0.0)
        streams.append((connection, subscriber))
    return hub, streams


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_take_from_frames_each_publish_once_for_every_stream(version: bytes) -> None:
    """After the head, an event published to many streams is framed once: every connection
    gets the same bytes object (a chunk for HTTP/1.1, the encoded event itself for a
    close-delimited HTTP/1.0 body), and an h11 client reads each stream back whole."""
    config = ServerConfig(heartbeat_interval=None)
    hub, streams = fan_out([version] * 4, config=config)
    wires = []
    for connection, subscriber in streams:
        pieces, is_done = connection.take_from(subscriber, now=0.0)
        assert len(pieces) == 1 and not is_done
        wires.append([pieces[0]])
    published = []
    for n in range(3):  # one event at a time, as a server whose clients keep up writes them
        published.append(hub.publish(Event(data=f"event {n}"), now=1.0))
        for (connection, subscriber), wire in zip(streams, wires, strict=True):
            pieces, is_done = connection.take_from(subscriber, now=1.0)
            assert len(pieces) == 1 and not is_done
            wire += pieces
    hub.close(now=2.0)
    for (connection, subscriber), wire in zip(streams, wires, strict=True):
        pieces, is_done = connection.take_from(subscriber, now=2.0)
        assert is_done
        wire += pieces
    for index in range(1, 4):  # the events' pieces, stream by stream: the same objects
        pieces = [wire[index] for wire in wires]
        assert all(piece is pieces[0] for piece in pieces)
        if version == b"1.0":
            assert pieces[0] is published[index - 1].encoded
    for wire in wires:
        response, body, is_ended = parse_response(b"".join(wire), eof=version == b"1.0")
        assert response.status_code == 200 and is_ended
        assert [e.data for e in Parser().feed(body) if isinstance(e, Event)][1:] == [
            "event 0", "event 1", "event 2",
        ]


def test_take_from_gives_gzip_streams_their_own_chunks() -> None:
    """A gzip stream's chunks are its own compressor's output, read back by an h11 client
    and gunzipped; framing them does not stop the plain streams sharing theirs."""
    config = ServerConfig(heartbeat_interval=None)
    hub, plain = fan_out([b"1.1"] * 2, config=config)
    gzip_connection = ServerConnection()
    request = gzip_connection.receive(
        b"GET /events HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n"
    )
    assert request is not None
    streams = [plain[0], (gzip_connection, hub.subscribe("/events", request.headers, 0.0)),
               plain[1]]
    wires: list[list[bytes]] = [[] for _ in streams]
    for stored_data in ("a", "b"):
        for (connection, subscriber), wire in zip(streams, wires, strict=True):
            wire += connection.take_from(subscriber, now=1.0)[0]
        hub.publish(Event(data=stored_data), now=1.0)
    for (connection, subscriber), wire in zip(streams, wires, strict=True):
        wire += connection.take_from(subscriber, now=1.0)[0]
    assert wires[0][-1] is wires[2][-1] and wires[1][-1] is not wires[0][-1]
    response, body, _ = parse_response(b"".join(wires[1]))
    assert (b"content-encoding", b"gzip") in response.headers
    text = zlib.decompressobj(wbits=31).decompress(body)
    assert [e.data for e in Parser().feed(text) if isinstance(e, Event)][1:] == ["a", "b"]


@given(
    ops=st.lists(st.sampled_from(["publish", "take", "heartbeat", "big"]), max_size=25),
    version=st.sampled_from([b"1.1", b"1.0"]),
    is_gzip=st.booleans(),
    is_closed=st.booleans(),
)
def test_take_from_writes_what_respond_writes(
    ops: list[str], version: bytes, is_gzip: bool, is_closed: bool
) -> None:
    """Byte for byte, take_from() writes what respond(take()) writes for the same queue --
    events, heartbeats, a drop past max_queued_bytes, the end -- over HTTP/1.1 and 1.0,
    plain or gzip: the hot path changes the cost, not the stream."""
    headers = [("Accept-Encoding", "gzip")] if is_gzip else []
    config = ServerConfig(heartbeat_interval=1.0)
    twins = [fan_out([version], headers, config=config, max_queued_bytes=300) for _ in range(2)]
    wires: list[list[bytes]] = [[], []]
    ends: list[list[bool]] = [[], []]
    now = 0.0
    for op in [*ops, *(["close"] if is_closed else []), "take"]:
        if op == "heartbeat":
            now += 1.5
        for (hub, [(connection, subscriber)]), wire, end, is_fast in zip(
            twins, wires, ends, (True, False), strict=True
        ):
            if op in ("publish", "big"):
                hub.publish(Event(data="x" * (200 if op == "big" else 10)), now=now)
            elif op == "heartbeat":
                subscriber.poll(now)
            elif op == "close":
                hub.close(now)
            elif is_fast:
                pieces, is_done = connection.take_from(subscriber, now)
                wire += pieces
                end.append(is_done)
            else:
                data, is_done = connection.respond(subscriber.take(now))
                wire.append(data)
                end.append(is_done)
    assert b"".join(wires[0]) == b"".join(wires[1])
    assert ends[0] == ends[1]
    assert any(ends[0]) is twins[0][1][0][1].is_closed  # the end (a close, a drop) was told
    assert all(piece for piece in wires[0])  # nothing empty handed to a transport


def test_take_from_before_the_request_is_misuse() -> None:
    """take_from() before the request was read raises LocalProtocolError, as respond()."""
    hub = Broadcaster(ReplayLog())
    subscriber = hub.subscribe("/events", [], now=0.0)
    with pytest.raises(LocalProtocolError):
        ServerConnection().take_from(subscriber, now=0.0)


def test_take_from_a_body_with_a_length_of_its_own_goes_through_h11() -> None:
    """A head that frames its own body (Content-Length in the config's headers): the hot
    path leaves the body to h11, which keeps to the length."""
    config = ServerConfig(heartbeat_interval=None, headers=(("Content-Length", "100"),))
    hub, [(connection, subscriber)] = fan_out([b"1.1"], config=config)
    head = b"".join(connection.take_from(subscriber, now=0.0)[0])
    assert b"chunked" not in head.lower()
    stored = hub.publish(Event(data="z"), now=1.0)
    assert connection.take_from(subscriber, now=1.0) == ([stored.encoded], False)
