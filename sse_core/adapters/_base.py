"""What the adapters' clients and servers share (floor 4): arguments, defaults, and the
application's view. No sockets and no waiting: each adapter does its own I/O."""

from __future__ import annotations

import random
import secrets
import ssl
from collections.abc import Callable

from .._actions import ReportStatus
from .._broadcast import (
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_REPLAY_TIME,
    DEFAULT_MAX_REPLAYS,
    Broadcaster,
)
from .._client import ClientConfig, ClientSession
from .._errors import InvalidConfigError
from .._metrics import Metrics
from .._replay import ReplayConfig, ReplayLog
from .._server import ServerConfig
from .._types import RandomSource
from ._http import (
    ClientOutput,
    HTTPClient,
    IncomingRequest,
    Refusal,
    check_seconds,
    refusal_for,
)

__all__ = [
    "DEFAULT_MAX_SUBSCRIBERS",
    "ClientBase",
    "ConnectionKey",
    "ServerBase",
    "client_address",
    "default_replay_log",
]

#: Default bound on the clients a server adapter serves at once.
DEFAULT_MAX_SUBSCRIBERS = 10_000

#: What ``max_subscribers_per_key`` counts by: ``(request, client address) -> key or None``.
ConnectionKey = Callable[[IncomingRequest, "str | None"], "str | None"]


def client_address(request: IncomingRequest, address: str | None) -> str | None:
    """The default connection key: the client's IP address (``None`` when unknown).

    Behind a reverse proxy every client has the proxy's address: key by a header the proxy
    sets (``X-Forwarded-For``'s last hop you trust) or by an API key instead.
    """
    return address


def check_limits(
    max_subscribers_per_key: int | None, connection_key: ConnectionKey
) -> None:
    """Refuse a bad per-key limit or key function (the Broadcaster checks the rest)."""
    if max_subscribers_per_key is not None and (
        type(max_subscribers_per_key) is not int or max_subscribers_per_key < 1
    ):
        raise InvalidConfigError(
            f"max_subscribers_per_key must be None or an int >= 1,"
            f" got {max_subscribers_per_key!r}"
        )
    if not callable(connection_key):
        raise InvalidConfigError(f"connection_key must be callable, got {connection_key!r}")


def default_replay_log() -> ReplayLog:
    """A replay log whose ids carry an epoch unique to this server start.

    After a restart, an id from before then reads as unknown -- an explicit gap -- instead of
    matching an unrelated new event.
    """
    return ReplayLog(ReplayConfig(epoch=secrets.token_hex(4)))


class ClientBase:
    """The part of every adapter's ``EventSource`` that is not I/O.

    It checks the arguments, builds the :class:`~sse_core.ClientSession` and the
    :class:`~sse_core.adapters.HTTPClient` that drives it, and gives the application its
    view (:attr:`session`, :attr:`metrics`, ``on_status``).
    """

    def __init__(
        self,
        config: ClientConfig | str,
        *,
        ssl_context: ssl.SSLContext | None,
        on_status: Callable[[ReportStatus], object] | None,
        rng: RandomSource | None,
        connect_timeout: float | None,
        max_redirects: int,
        read_size: int,
    ) -> None:
        if isinstance(config, str):
            config = ClientConfig(url=config)
        if type(read_size) is not int or read_size < 1:
            raise InvalidConfigError(f"read_size must be an int >= 1, got {read_size!r}")
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise InvalidConfigError(f"ssl_context must be an ssl.SSLContext, got {ssl_context!r}")
        session = ClientSession(config, rng=rng if rng is not None else random.Random())
        self._http = HTTPClient(
            session, connect_timeout=connect_timeout, max_redirects=max_redirects
        )
        self._ssl_context = ssl_context
        self._on_status = on_status
        self._read_size = read_size

    @property
    def session(self) -> ClientSession:
        """The sans-IO session (state, ``last_event_id``, ``metrics``, ``ready_state``)."""
        return self._http.session

    @property
    def metrics(self) -> Metrics:
        """The session's counters (deliveries, duplicates, reconnections ...)."""
        return self._http.session.metrics

    def _tls_context(self) -> ssl.SSLContext:
        """The context for an ``https`` connection: the caller's, else the system's (made
        once: loading the trust store is not free)."""
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _notify(self, output: ClientOutput) -> None:
        """Tell ``on_status`` about a status change."""
        if isinstance(output, ReportStatus) and self._on_status is not None:
            self._on_status(output)


class ServerBase:
    """The part of every adapter's ``EventStreamServer`` that is not I/O.

    It checks the arguments, builds the :class:`~sse_core.Broadcaster` (with
    :func:`default_replay_log` unless a log is given), and decides which requests are
    refused: the shared 404/405/503 rules, then 429 for a client whose
    ``connection_key`` has ``max_subscribers_per_key`` streams open already.
    """

    def __init__(
        self,
        replay_log: ReplayLog | None,
        *,
        config: ServerConfig | None,
        path: str | None,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        max_subscribers: int | None,
        request_timeout: float,
        send_timeout: float | None,
        max_subscribers_per_key: int | None = None,
        connection_key: ConnectionKey = client_address,
        max_replays: int = DEFAULT_MAX_REPLAYS,
        max_replay_time: float = DEFAULT_MAX_REPLAY_TIME,
    ) -> None:
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise InvalidConfigError(f"path must be None or a str starting with '/', got {path!r}")
        check_seconds("request_timeout", request_timeout)
        check_seconds("send_timeout", send_timeout, optional=True)
        check_limits(max_subscribers_per_key, connection_key)
        if replay_log is None:
            replay_log = default_replay_log()
        self._broadcaster = Broadcaster(
            replay_log,
            config=config,
            max_queued_bytes=max_queued_bytes,
            max_subscribers=max_subscribers,
            max_subscribers_per_key=max_subscribers_per_key,
            max_replays=max_replays,
            max_replay_time=max_replay_time,
        )
        self._connection_key = connection_key
        self._path = path
        self._request_timeout = float(request_timeout)
        self._send_timeout = send_timeout
        self._is_closing = False

    @property
    def broadcaster(self) -> Broadcaster:
        """The fan-out (subscriber count, ``dropped``, the replay log)."""
        return self._broadcaster

    def _admit(
        self, request: IncomingRequest, address: str | None
    ) -> tuple[Refusal | None, str | None]:
        """How to refuse ``request`` (or ``None`` to serve it), and its connection key."""
        is_available = not (self._broadcaster.is_full or self._is_closing)
        refusal = refusal_for(request, path=self._path, is_available=is_available)
        if refusal is not None:
            return refusal, None
        key = self._connection_key(request, address)
        if self._broadcaster.is_full_for(key):
            return TOO_MANY, key
        return None, key


#: The answer to a client whose key has ``max_subscribers_per_key`` streams open.
TOO_MANY = Refusal(
    status=429,
    text="too many event streams from this client\n",
    headers=(("Retry-After", "60"),),
)
