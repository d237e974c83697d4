"""What the metrics exporters share (:mod:`~sse_core.adapters.prometheus`,
:mod:`~sse_core.adapters.otel`): the sources they read, by name, and how a snapshot is read."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Protocol, TypeVar

from .._errors import InvalidConfigError
from .._metrics import Metrics, ServerMetrics

__all__ = ["MetricsSource", "Sources", "le_label"]

_T_co = TypeVar("_T_co", covariant=True)
#: Reads of one source per collection before a torn snapshot's error is let through.
_READS = 3


class MetricsSource(Protocol[_T_co]):
    """Anything with a ``metrics`` snapshot: a client adapter's ``EventSource``, a driver or a
    :class:`~sse_core.ClientSession` (:class:`~sse_core.Metrics`); a
    :class:`~sse_core.Broadcaster` (:class:`~sse_core.state.ServerMetrics`; an adapter's
    server hands out its own as ``server.broadcaster``)."""

    @property
    def metrics(self) -> _T_co:
        """The counters now."""
        ...


class Sources:
    """The named client and server sources an exporter reads at each collection.

    Args:
        clients: Client sources by stream name.
        servers: Server sources by name.
    """

    def __init__(
        self,
        clients: Mapping[str, MetricsSource[Metrics]] | None = None,
        servers: Mapping[str, MetricsSource[ServerMetrics]] | None = None,
    ) -> None:
        self._clients: dict[str, MetricsSource[Metrics]] = dict(clients or {})
        self._servers: dict[str, MetricsSource[ServerMetrics]] = dict(servers or {})

    def add_client(self, stream: str, source: MetricsSource[Metrics]) -> None:
        """Export ``source`` as the client stream ``stream`` (replacing one of that name)."""
        self._clients[stream] = source

    def add_server(self, name: str, source: MetricsSource[ServerMetrics]) -> None:
        """Export ``source`` as the server ``name`` (replacing one of that name)."""
        self._servers[name] = source

    def remove(self, name: str) -> None:
        """Stop exporting the client stream or server called ``name`` (no error if absent)."""
        self._clients.pop(name, None)
        self._servers.pop(name, None)

    def client_snapshots(self) -> Iterator[tuple[str, Metrics]]:
        """Each client's name and snapshot, read now."""
        for name, source in list(self._clients.items()):
            yield name, _read(source)

    def server_snapshots(self) -> Iterator[tuple[str, ServerMetrics]]:
        """Each server's name and snapshot, read now."""
        for name, source in list(self._servers.items()):
            yield name, _read(source)


def _read(source: MetricsSource[_T_co]) -> _T_co:
    """A source's snapshot. A collection may run in another thread than the one counting (the
    Prometheus HTTP server's, the OTel SDK's reader): a snapshot taken between a histogram's
    bucket update and its count update fails its own validation; read again, the next read
    sees both."""
    for _ in range(_READS - 1):
        try:
            return source.metrics
        except InvalidConfigError:
            continue
    return source.metrics


def le_label(bound: float) -> str:
    """A histogram bucket's upper bound as Prometheus writes ``le``: ``+Inf`` for the last."""
    return "+Inf" if bound == math.inf else repr(bound)
