"""What the adapters' clients and servers share (floor 4): arguments, defaults, and the
application's view. No sockets and no waiting: each adapter does its own I/O."""

from __future__ import annotations

import random
import secrets
import ssl
from collections.abc import Callable

from .._actions import ReportStatus
from .._broadcast import DEFAULT_MAX_QUEUED_BYTES, Broadcaster
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

__all__ = ["ClientBase", "ServerBase", "default_replay_log"]


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
    refused.
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
    ) -> None:
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise InvalidConfigError(f"path must be None or a str starting with '/', got {path!r}")
        check_seconds("request_timeout", request_timeout)
        check_seconds("send_timeout", send_timeout, optional=True)
        if replay_log is None:
            replay_log = default_replay_log()
        self._broadcaster = Broadcaster(
            replay_log,
            config=config,
            max_queued_bytes=max_queued_bytes,
            max_subscribers=max_subscribers,
        )
        self._path = path
        self._request_timeout = float(request_timeout)
        self._send_timeout = send_timeout
        self._is_closing = False

    @property
    def broadcaster(self) -> Broadcaster:
        """The fan-out (subscriber count, ``dropped``, the replay log)."""
        return self._broadcaster

    def _refusal(self, request: IncomingRequest) -> Refusal | None:
        """How to refuse ``request``, or ``None`` to serve it."""
        is_available = not (self._broadcaster.is_full or self._is_closing)
        return refusal_for(request, path=self._path, is_available=is_available)
