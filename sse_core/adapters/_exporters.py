"""What the metrics exporters share (:mod:`~sse_core.adapters.prometheus`,
:mod:`~sse_core.adapters.otel`): the sources they read, by name, and how a snapshot is read."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import NamedTuple, Protocol, TypeVar

from .._errors import InvalidConfigError
from .._metrics import Metrics, ServerMetrics

__all__ = ["BUFFERS", "SERIES", "MetricsSource", "Series", "Sources", "le_label", "series"]

_T_co = TypeVar("_T_co", covariant=True)
#: Reads of one source per collection before a torn snapshot's error is let through.
_READS = 3


class Series(NamedTuple):
    """One field of a snapshot and its names in both ecosystems (docs/adapters/exporters.rst
    shows this table)."""

    side: str  # "client" (Metrics) or "server" (ServerMetrics)
    kind: str  # "counter", "histogram" or "ratio"
    field: str  # the snapshot's attribute
    prometheus: str  # after "<namespace>_<side>_"; counters without "_total"
    otel: str  # after "<namespace>.<side>."
    unit: str  # the OTel unit; a histogram's is that of its count (its sum is in "s")
    text: str  # the help / description


#: Every exported field but the gauges of the moment (``connected_clients``, the buffers).
SERIES = (
    Series("client", "counter", "connection_attempts", "connection_attempts",
           "connection.attempts", "{attempt}", "Connection attempts started."),
    Series("client", "counter", "connection_failures", "connection_failures",
           "connection.failures", "{attempt}",
           "Attempts that ended before their response was accepted."),
    Series("client", "counter", "messages_received", "messages_received",
           "messages.received", "{message}", "Events delivered to the application."),
    Series("client", "counter", "messages_deduplicated", "messages_deduplicated",
           "messages.deduplicated", "{message}", "Events dropped as already seen."),
    Series("client", "counter", "reconnections", "reconnections",
           "reconnections", "{reconnection}", "Connections re-established after a loss."),
    Series("client", "counter", "gaps_reported", "gaps",
           "gaps", "{gap}", "Gaps in the event sequence reported."),
    Series("client", "counter", "events_missed", "events_missed",
           "events.missed", "{event}", "Events the gaps of known size lost."),
    Series("client", "counter", "gaps_of_unknown_size", "gaps_unknown_size",
           "gaps.unknown_size", "{gap}", "Gaps whose size nobody knows."),
    Series("client", "counter", "latency_skewed", "latency_skewed",
           "latency.skewed", "{event}",
           "Stamps later than their arrival (clock skew), left out of the latency."),
    Series("client", "histogram", "connections", "connection_duration_seconds",
           "connection.duration", "{connection}",
           "How long connections were up, for those that ended."),
    Series("client", "histogram", "time_to_reconnect", "time_to_reconnect_seconds",
           "reconnection.duration", "{reconnection}",
           "From losing a connection to having the next one up."),
    Series("client", "histogram", "latency", "latency_seconds",
           "latency", "{event}",
           "From the server's stamp to the arrival, for stamped events (includes clock skew)."),
    Series("client", "ratio", "stream_completion_rate", "stream_completion_ratio",
           "stream.completion_ratio", "1",
           "Events delivered / events sent; no sample while unknown."),
    Series("client", "ratio", "connection_failure_rate", "connection_failure_ratio",
           "connection.failure_ratio", "1",
           "Failed attempts / attempts; no sample before the first attempt."),
    Series("server", "counter", "events_published", "events_published",
           "events.published", "{event}", "Events published."),
    Series("server", "counter", "bytes_sent", "sent_bytes",
           "bytes_sent", "By", "Body bytes handed to subscribers (after compression)."),
    Series("server", "counter", "queue_drops", "queue_drops",
           "queue_drops", "{client}", "Subscribers dropped for falling behind."),
    Series("server", "counter", "replays_served", "replays_served",
           "replays.served", "{replay}", "Resumptions served with a replay."),
    Series("server", "counter", "too_old_resumes", "too_old_resumes",
           "resumes.too_old", "{resume}", "Resumptions whose events the log had evicted."),
    Series("server", "counter", "unknown_id_resumes", "unknown_id_resumes",
           "resumes.unknown_id", "{resume}", "Resumptions from an id the log cannot place."),
    Series("server", "counter", "replays_put_off", "replays_put_off",
           "replays.put_off", "{client}", "Clients asked to come back later (max_replays)."),
    Series("server", "counter", "send_timeouts", "send_timeouts",
           "send_timeouts", "{client}", "Clients let go after a write timed out."),
)
#: The client's buffers: ``Metrics.buffered_in_<name>``.
BUFFERS = ("sequencer", "assembler", "batcher")


def series(side: str, kind: str) -> tuple[Series, ...]:
    """The rows of :data:`SERIES` for one side and kind."""
    return tuple(row for row in SERIES if row.side == side and row.kind == kind)


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
