"""What the adapters' clients share (floor 4): the dispatch of the session's outputs, the
iteration rules (events, gaps raised, failures raised at the end, a quiet close), and the
glue under them: the h11 client over the adapter's sockets, or a driver over the user's own
HTTP client. No sockets here: each adapter does its own I/O."""

from __future__ import annotations

import collections
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypedDict, TypeVar, cast

from .. import ClientConfig, ClientSession
from .._actions import (
    Action,
    ClientState,
    Connect,
    Deliver,
    DeliverBatch,
    Disconnect,
    ReportFailure,
    ReportGap,
    ReportStatus,
    Request,
    Send,
    SendHead,
)
from .._errors import InvalidConfigError, StreamError
from .._events import Event
from .._metrics import Metrics
from .._types import RandomSource
from ._base import AdapterBase, Report, options_or_default
from ._http import (
    ClientOutput,
    CloseConnection,
    Endpoint,
    HTTPClient,
    NetworkSignal,
    OpenConnection,
    Write,
)
from ._logging import LOGGED, adapter_name, log_client_report
from ._options import ClientOptions

__all__ = ["AsyncClientBase", "ClientBase", "RequestDriver", "SourceArgs", "request_headers"]

#: What the glue under a client asks of its adapter: the socket work of
#: :class:`~sse_core.adapters.HTTPClient`, or a whole request (:class:`~sse_core.Connect`,
#: :class:`~sse_core.Disconnect`) for a driver over the user's HTTP client; and the reports.
_Output = ClientOutput | Connect | Disconnect

_Source = TypeVar("_Source", bound="AsyncClientBase")


def _event_of(report: Report, ready: collections.deque[Event]) -> Event | None:
    """The plain loop's rule: an event is handed out (a batch's first, the rest put in
    ``ready``), a gap raised, the rest skipped.

    Raises:
        GapError: ``report`` is a :class:`~sse_core.ReportGap`.
    """
    if isinstance(report, Deliver):
        return report.event
    if isinstance(report, DeliverBatch):
        ready.extend(report.events[1:])
        return report.events[0]
    if isinstance(report, ReportGap):
        raise report.error()
    return None


class _Events:
    """``for event in source``: the events of the source's reports; a gap raises
    :class:`~sse_core.GapError` and the next step goes on after it (the reports it reads
    from live on, so iterating the source again continues where it stopped).

    Events the source has ready (:attr:`ClientBase._ready`: the rest of a run of
    deliveries) are handed out first, without a trip through the reports.
    """

    def __init__(self, source: ClientBase, reports: Iterator[Report]) -> None:
        self._source = source
        self._ready = source._ready
        self._reports = reports

    def __iter__(self) -> _Events:
        return self

    def __next__(self) -> Event:
        if not self._source._is_closing:
            try:  # close() may empty _ready from another thread meanwhile
                return self._ready.popleft()
            except IndexError:
                pass
        while True:
            event = _event_of(next(self._reports), self._ready)
            if event is not None:
                return event


class _AsyncEvents:
    """``async for event in source``: as :class:`_Events`, for the async adapters."""

    def __init__(self, source: ClientBase, reports: AsyncIterator[Report]) -> None:
        self._source = source
        self._ready = source._ready
        self._reports = reports

    def __aiter__(self) -> _AsyncEvents:
        return self

    async def __anext__(self) -> Event:
        if not self._source._is_closing:
            try:
                return self._ready.popleft()
            except IndexError:
                pass
        while True:
            event = _event_of(await self._reports.__anext__(), self._ready)
            if event is not None:
                return event


class SourceArgs(TypedDict, total=False):
    """The keyword arguments every ``EventSource`` takes after its config (see
    :meth:`ClientBase.__init__`); a driver passes them on as they are."""

    options: ClientOptions | None
    on_status: Callable[[ReportStatus], object] | None
    rng: RandomSource | None
    clock: Callable[[], float] | None


def request_headers(request: Request) -> list[tuple[str, str]]:
    """The header fields a driver hands the user's client with ``request``: the session's,
    and ``Accept-Encoding: identity`` when they name no coding (the session asks for gzip
    when it accepts it), so that the client never offers its own list (``br``, ``zstd``
    ...) and the server answers only in a coding the session was told about. The client's
    default headers, auth and cookies merge in; the session's fields win."""
    headers = list(request.headers)
    if not any(name.lower() == "accept-encoding" for name, _ in headers):
        headers.append(("Accept-Encoding", "identity"))
    return headers


class RequestDriver:
    """The glue under a driver that rides on the user's HTTP client (httpx ...): the
    session's own actions, untranslated. The client library opens connections, writes HTTP,
    follows redirects and decodes chunked framing; the adapter carries out each
    :class:`~sse_core.Connect` as one request and each :class:`~sse_core.Disconnect` by
    closing its response, and reports the response's head, body bytes and end back.
    Every input takes ``now``; no I/O here.
    """

    def __init__(self, session: ClientSession) -> None:
        self._session = session
        self._is_in_flight = False  # a Connect not yet ended by a Disconnect or an end

    @property
    def session(self) -> ClientSession:
        """The session being driven."""
        return self._session

    def next_deadline(self) -> float | None:
        """When to call :meth:`on_timer` next, or ``None``."""
        return self._session.next_deadline()

    def start(self, now: float) -> list[_Output]:
        """Start the session: the first :class:`~sse_core.Connect`."""
        return self._carry(self._session.start(now))

    def close(self, now: float, reason: str | None = None) -> list[_Output]:
        """Close for good (the application's ``close()``)."""
        return self._carry(self._session.close(now, reason))

    def on_timer(self, now: float) -> list[_Output]:
        """Wake-up at (or after) :meth:`next_deadline`."""
        return self._carry(self._session.on_timer(now))

    def on_network(self, signal: NetworkSignal, now: float) -> list[_Output]:
        """The platform's network signal (the session's ``on_offline``, ``on_online`` or
        ``on_network_changed``)."""
        return self._carry(getattr(self._session, f"on_{signal}")(now))

    def on_response(
        self, status: int, headers: list[tuple[bytes, bytes]], now: float
    ) -> list[_Output]:
        """The response head of the request in flight arrived (after redirects)."""
        return self._carry(self._session.on_response(status, headers, now))

    def on_data(
        self, data: bytes, now: float, *, wall_now: float | None = None
    ) -> list[_Output]:
        """Body bytes arrived, as sent (``b""``: the body ended). Ignored when no request is
        in flight (what is left of a response the session let go of, read in the same step
        as its end)."""
        if not self._is_in_flight:
            return []
        if not data:
            self._is_in_flight = False
            ended: list[_Output] = [Disconnect(reason="response ended")]
            return ended + self._carry(self._session.on_eof(now))
        return self._carry(self._session.on_data(data, now, wall_now=wall_now))

    def on_connection_error(self, now: float, reason: str) -> list[_Output]:
        """The request failed, or its response broke (ignored when none is in flight)."""
        if not self._is_in_flight:
            return []
        self._is_in_flight = False
        lost: list[_Output] = [Disconnect(reason=reason)]
        return lost + self._carry(self._session.on_connection_lost(now, reason))

    def _carry(self, actions: list[Action]) -> list[_Output]:
        for action in actions:
            kind = type(action)
            if kind is Connect:
                self._is_in_flight = True
            elif kind is Disconnect:
                self._is_in_flight = False
            elif kind is Send or kind is SendHead:  # pragma: no cover - server actions
                raise AssertionError(f"a client session returned {action!r}")
        return cast("list[_Output]", actions)  # the session's own actions, untranslated


class ClientBase(AdapterBase):
    """The part of every adapter's ``EventSource`` that is not I/O.

    It builds the :class:`~sse_core.ClientSession` and the
    :class:`~sse_core.adapters.HTTPClient` that drives it, queues what they answer to each
    input (every input reads the clock itself), and carries the queue out in order
    (:meth:`_pump`): socket work goes to the adapter's :meth:`_open`, :meth:`_write` and
    :meth:`_close_socket`, which never wait: by default the connection to open and the
    request to write are noted (:attr:`_endpoint`, :attr:`_unsent`) for the adapter's next
    wait to carry out; every other output goes to ``on_status`` and to the application.
    It also gives the application its view (:attr:`session`, :attr:`metrics`).

    The iteration rules are here too, the same for every adapter: the plain loop yields
    events and raises :class:`~sse_core.GapError` for a gap (iterate again to go on); an
    iteration that ends for a failure (:class:`~sse_core.ReportFailure`: a refused response,
    given up, a cut request that may not be sent twice) raises its
    :class:`~sse_core.StreamError` once every report before it was handed out; one that
    ends by ``close()``, by ``ClientOptions.timeout`` or by a 204 ends quietly.
    """

    def __init__(
        self,
        config: ClientConfig | str,
        *,
        options: ClientOptions | None = None,
        on_status: Callable[[ReportStatus], object] | None = None,
        rng: RandomSource | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Every adapter's ``EventSource`` takes these arguments.

        Args:
            config: The session configuration, or just the URL.
            options: TLS, timeouts and limits of the connection
                (:class:`~sse_core.adapters.ClientOptions`; the defaults when ``None``).
            on_status: Called with each :class:`~sse_core.ReportStatus` (state changes).
            rng: Randomness for backoff jitter (a new :class:`random.Random` by default).
            clock: Monotonic clock in seconds; by default the framework's
                (:func:`time.monotonic`, :func:`trio.current_time` for trio).

        Raises:
            InvalidConfigError: a bad argument.
        """
        if clock is not None and not callable(clock):
            raise InvalidConfigError(f"clock must be callable, got {clock!r}")
        if isinstance(config, str):
            config = ClientConfig(url=config)
        options = options_or_default(options, ClientOptions)
        # Each input's events come as one record: the plain loop takes them in bulk, and
        # reports() hands them out one by one (_pump) unless ClientConfig.batching is set.
        session = ClientSession(
            config, rng=rng if rng is not None else random.Random(), is_batched_per_input=True
        )
        self._is_batching = config.batching is not None
        self._http = self._glue(session, options)
        self._is_latency_measured = config.is_latency_measured
        self._options = options
        self._ssl_context = options.ssl_context
        self._on_status = on_status
        self._clock = clock if clock is not None else self._default_clock
        self._outputs: collections.deque[_Output] = collections.deque()
        # The plain loop's events taken from the outputs at once (a run of deliveries).
        self._ready: collections.deque[Event] = collections.deque()
        # The platform's network signals not yet taken to the session (any thread appends).
        self._signals: collections.deque[NetworkSignal] = collections.deque()
        self._endpoint: Endpoint | None = None  # a connection to open
        self._request: Request | None = None  # a driver's request to send
        self._unsent = b""  # the request to write on it, once open
        self._is_claimed = False  # the iteration was asked for
        self._is_begun = False  # the session was started
        self._is_closing = False  # the application closed the source
        self._failure: StreamError | None = None  # what the iteration raises at its end
        self._ends_at: float | None = None  # when ClientOptions.timeout closes the source
        self._events: _Events | _AsyncEvents | None = None  # the plain loop, once asked for
        self._setup()

    @property
    def session(self) -> ClientSession:
        """The sans-IO session (state, ``last_event_id``, ``metrics``, ``ready_state``)."""
        return self._http.session

    @property
    def metrics(self) -> Metrics:
        """The session's counters (deliveries, duplicates, reconnections ...)."""
        return self._http.session.metrics

    @property
    def options(self) -> ClientOptions:
        """The transport options this source was made with."""
        return self._options

    def _glue(self, session: ClientSession, options: ClientOptions) -> HTTPClient | RequestDriver:
        """What turns the session's actions into the adapter's work: h11 over the adapter's
        sockets (a driver over the user's HTTP client returns a :class:`RequestDriver`)."""
        return HTTPClient(
            session,
            connect_timeout=options.connect_timeout,
            max_redirects=options.max_redirects,
            max_head_size=options.max_head_size,
        )

    # --- the adapter's socket work, in the order the outputs ask for it ------------------

    def _open(self, endpoint: Endpoint) -> None:
        """Open a connection to ``endpoint``, closing any other (by default: note it)."""
        self._close_socket()
        self._endpoint = endpoint

    def _write(self, data: bytes) -> None:
        """Write the request on the connection just opened (by default: note it)."""
        self._unsent = data

    def _send_request(self, request: Request) -> None:
        """A driver: send ``request`` with the user's client, closing any response before
        (by default: note it)."""
        self._close_socket()
        self._request = request

    def _close_socket(self) -> None:
        """Close the connection, or give up opening it; read nothing more from it."""
        self._endpoint = None
        self._unsent = b""
        self._request = None
        self._drop_connection()

    def _drop_connection(self) -> None:
        """Close the adapter's socket (or stop opening it), if any."""
        raise NotImplementedError

    # --- the shared loop ------------------------------------------------------------------

    def _claim(self) -> None:
        """Refuse a second iteration.

        Raises:
            RuntimeError: the source is iterated already.
        """
        if self._is_claimed:
            raise RuntimeError("an EventSource is iterated once")
        self._is_claimed = True

    def _begin(self) -> None:
        """Start the session (once; not after the application closed the source)."""
        if not self._is_begun and not self._is_closing:
            self._is_begun = True
            now = self._clock()
            if self._options.timeout is not None:
                self._ends_at = now + self._options.timeout
            self._outputs.extend(self._http.start(now))

    def _raise_failure(self) -> None:
        """The iteration is over: raise the failure that ended the session, once.

        Raises:
            StreamError: the session closed for a failure, not by the application.
        """
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    @property
    def _is_done(self) -> bool:
        """Whether the iteration ends: the application closed the source or the session
        closed (refused, gave up)."""
        return self._is_closing or self.session.state is ClientState.CLOSED

    def _pump(self) -> Report | None:
        """Carry out queued outputs in order until one is for the application.

        Returns:
            That output (``on_status`` has seen it), or ``None`` when the queue is empty or
            the source is closing.
        """
        if self._signals:
            self._take_signals()
        outputs = self._outputs
        while outputs and not self._is_closing:
            output = outputs.popleft()
            if isinstance(output, DeliverBatch):  # the common case first: an input's events
                if self._is_batching:  # the application's batch, not a run of a read's events
                    self._notify(output)
                elif self._events is None:  # reports() hands out a Deliver per event
                    events = reversed(output.events)
                    outputs.extendleft(Deliver(event=event) for event in events)
                    continue
                return output
            if isinstance(output, Deliver):  # the sequencer's, one by one
                if self._events is not None:
                    # The plain loop hands out the rest of the run straight from _ready.
                    ready = self._ready
                    while outputs and type(following := outputs[0]) is Deliver:
                        outputs.popleft()
                        ready.append(following.event)
                return output
            if isinstance(output, OpenConnection):
                self._open(output.endpoint)
            elif isinstance(output, Write):
                self._write(output.data)
            elif isinstance(output, Connect):
                self._send_request(output.request)
            elif isinstance(output, (CloseConnection, Disconnect)):
                self._close_socket()
            elif isinstance(output, ReportFailure):
                log_client_report(self.session, adapter_name(self), output)
                self._failure = output.error()  # raised once the reports before it are out
            else:
                self._notify(output)
                return output
        return None

    def _timeout(self) -> float | None:
        """Seconds until the next deadline (0 when past), or ``None`` when none is set."""
        deadlines = [d for d in (self._http.next_deadline(), self._ends_at) if d is not None]
        return max(0.0, min(deadlines) - self._clock()) if deadlines else None

    # --- the platform's network signals -----------------------------------------------------

    def network_offline(self) -> None:
        """The platform says there is no network (a browser's ``offline`` event, a phone's
        connectivity callback): the connection goes and nothing is tried until
        :meth:`network_online`; no backoff attempt is spent meanwhile, and the status is
        ``OFFLINE`` (:meth:`~sse_core.ClientSession.on_offline`). Call it from the
        iterating thread or event loop, or (blocking adapters) any thread."""
        self._signal("offline", is_dropping=True)

    def network_online(self) -> None:
        """The network is back: connect at once, without the rest of a backoff delay
        (:meth:`~sse_core.ClientSession.on_online`)."""
        self._signal("online", is_dropping=False)

    def network_changed(self) -> None:
        """The device moved to another network (Wi-Fi to cellular): the connection may be
        dead without an error, so it is replaced at once, resuming from ``Last-Event-ID``
        (:meth:`~sse_core.ClientSession.on_network_changed`)."""
        self._signal("network_changed", is_dropping=True)

    def _signal(self, signal: NetworkSignal, *, is_dropping: bool) -> None:
        self._signals.append(signal)
        self._interrupt(is_dropping=is_dropping)

    def _interrupt(self, *, is_dropping: bool) -> None:
        """End the wait in progress so that the loop takes the signals to the session;
        ``is_dropping``: the signal may drop the connection, so a blocked read may be cut
        short (any thread may call this in a blocking adapter)."""
        raise NotImplementedError

    def _take_signals(self) -> None:
        """Take the queued network signals to the session, in order."""
        while self._signals:
            signal = self._signals.popleft()
            self._outputs.extend(self._http.on_network(signal, self._clock()))

    # --- inputs: each queues what the HTTP client answers --------------------------------

    def _connected(self) -> None:
        """The connection asked for is open (TLS included)."""
        assert isinstance(self._http, HTTPClient)
        self._outputs.extend(self._http.on_connected(self._clock()))

    def _responded(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """A driver: the response head of the request sent arrived."""
        assert isinstance(self._http, RequestDriver)
        self._outputs.extend(self._http.on_response(status, headers, self._clock()))

    def _received(self, data: bytes) -> None:
        """Bytes arrived (``b""``: the peer closed the connection); with
        ``ClientConfig.is_latency_measured``, read with the wall clock (:func:`time.time`)."""
        wall_now = time.time() if self._is_latency_measured else None
        self._outputs.extend(self._http.on_data(data, self._clock(), wall_now=wall_now))

    def _failed(self, reason: str) -> None:
        """Opening failed, or the open connection broke."""
        self._outputs.extend(self._http.on_connection_error(self._clock(), reason))

    def _timer(self) -> bool:
        """Wake the session at its deadline; whether that ended the attempt in flight
        (``ClientOptions.timeout`` running out closes the source: the iteration ends)."""
        now = self._clock()
        if self._ends_at is not None and now >= self._ends_at and not self._is_closing:
            self._is_closing = True
            timeout = self._options.timeout
            self._close_session(f"closed after ClientOptions.timeout ({timeout:g} s)")
            return True
        outputs = self._http.on_timer(now)
        self._outputs.extend(outputs)
        return any(isinstance(output, (CloseConnection, Disconnect)) for output in outputs)

    def _close_session(self, reason: str | None = None) -> None:
        """Close the session for good and report the final status (the socket work is the
        caller's). The status changes still queued reach ``on_status`` first, so that none
        is lost when the application leaves the loop early; a pending failure is dropped
        (the application closed the source)."""
        queued = list(self._outputs)
        self._outputs.clear()
        self._ready.clear()
        self._failure = None
        for output in [*queued, *self._http.close(self._clock(), reason)]:
            self._notify(output)

    def _tls_context(self) -> ssl.SSLContext:
        """The context for an ``https`` connection: the options', else the system's (made
        once: loading the trust store is not free)."""
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _plain_loop(self, reports: Callable[[], Iterator[Report]]) -> Iterator[Event]:
        """The plain loop over the source's ``reports()`` (made once: iterating the source
        again goes on where it stopped)."""
        if self._events is None:
            self._events = _Events(self, reports())
        assert isinstance(self._events, _Events)
        return self._events

    def _notify(self, output: _Output) -> None:
        """Log a report (:mod:`sse_core.adapters._logging`) and tell ``on_status`` about a
        status change. A batch is logged when it is the application's
        (``ClientConfig.batching``), not a run of a read's events."""
        if isinstance(output, LOGGED) and (
            self._is_batching or not isinstance(output, DeliverBatch)
        ):
            log_client_report(self.session, adapter_name(self), output)
        if isinstance(output, ReportStatus) and self._on_status is not None:
            self._on_status(output)


class AsyncClientBase(ClientBase):
    """An ``EventSource`` used as an ``async with`` block: leaving it calls :meth:`aclose`."""

    def __aiter__(self) -> AsyncIterator[Event]:
        """The events (a gap raises :class:`~sse_core.GapError`; iterate again to go on)."""
        if self._events is None:
            self._events = _AsyncEvents(self, self.reports())
        assert isinstance(self._events, _AsyncEvents)
        return self._events

    def reports(self) -> AsyncIterator[Report]:
        """Everything for the application, in order (see the adapter)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close the connection and end the iteration (the application's ``close()``)."""
        raise NotImplementedError

    async def __aenter__(self: _Source) -> _Source:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
