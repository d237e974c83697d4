"""A Prometheus collector over the sessions' metrics (``pip install 'sse-core[prometheus]'``).

:class:`MetricsCollector` reads the snapshots when Prometheus scrapes -- the clients'
:class:`~sse_core.Metrics` (labelled ``stream``) and the broadcasters'
:class:`~sse_core.state.ServerMetrics` (labelled ``server``) -- and yields them as
``prometheus_client`` metric families named the Prometheus way: ``sse_client_*`` and
``sse_server_*``, the unit in the name (``_seconds``, ``_bytes``, ``_ratio``), ``_total`` on
counters, histograms with cumulative ``le`` buckets. It keeps nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .._metrics import Histogram, Metrics, ServerMetrics
from ._exporters import MetricsSource, Sources, le_label

__all__ = ["MetricsCollector"]


# (Metrics field, name without the sse_client_ prefix and _total, help)
_CLIENT_COUNTERS = (
    ("connection_attempts", "connection_attempts", "Connection attempts started."),
    ("connection_failures", "connection_failures",
     "Attempts that ended before their response was accepted."),
    ("messages_received", "messages_received", "Events delivered to the application."),
    ("messages_deduplicated", "messages_deduplicated", "Events dropped as already seen."),
    ("reconnections", "reconnections", "Connections re-established after a loss."),
    ("gaps_reported", "gaps", "Gaps in the event sequence reported."),
    ("events_missed", "events_missed", "Events the gaps of known size lost."),
    ("gaps_of_unknown_size", "gaps_unknown_size", "Gaps whose size nobody knows."),
    ("latency_skewed", "latency_skewed",
     "Stamps later than their arrival (clock skew), left out of the latency."),
)
# (Metrics field, name without the sse_client_ prefix, help)
_CLIENT_HISTOGRAMS = (
    ("connections", "connection_duration_seconds",
     "How long connections were up, for those that ended."),
    ("time_to_reconnect", "time_to_reconnect_seconds",
     "From losing a connection to having the next one up."),
    ("latency", "latency_seconds",
     "From the server's stamp to the arrival, for stamped events (includes clock skew)."),
)
_CLIENT_RATIOS = (
    ("stream_completion_rate", "stream_completion_ratio",
     "Events delivered / events sent; no sample while unknown."),
    ("connection_failure_rate", "connection_failure_ratio",
     "Failed attempts / attempts; no sample before the first attempt."),
)
_BUFFERS = ("sequencer", "assembler", "batcher")
# (ServerMetrics field, name without the sse_server_ prefix and _total, help)
_SERVER_COUNTERS = (
    ("events_published", "events_published", "Events published."),
    ("bytes_sent", "sent_bytes", "Body bytes handed to subscribers (after compression)."),
    ("queue_drops", "queue_drops", "Subscribers dropped for falling behind."),
    ("replays_served", "replays_served", "Resumptions served with a replay."),
    ("too_old_resumes", "too_old_resumes", "Resumptions whose events the log had evicted."),
    ("unknown_id_resumes", "unknown_id_resumes", "Resumptions from an id the log cannot place."),
    ("replays_put_off", "replays_put_off", "Clients asked to come back later (max_replays)."),
    ("send_timeouts", "send_timeouts", "Clients let go after a write timed out."),
)


class MetricsCollector(Sources, Collector):
    """Exposes clients' and servers' metrics to a ``prometheus_client`` registry.

    Register it once (``registry.register(collector)``, or ``REGISTRY``); every scrape reads
    each source's ``metrics`` then. Sources can be added and removed while it is registered
    (:meth:`add_client`, :meth:`add_server`, :meth:`remove`).

    Args:
        clients: Client sources (anything with ``.metrics`` -> :class:`~sse_core.Metrics`:
            an ``EventSource``, a driver, a session) by stream name (the ``stream`` label).
        servers: Server sources (``.metrics`` -> :class:`~sse_core.state.ServerMetrics`: a
            :class:`~sse_core.Broadcaster`) by name (the ``server`` label).
        namespace: The names' first part (``sse``: ``sse_client_...``).
    """

    def __init__(
        self,
        clients: Mapping[str, MetricsSource[Metrics]] | None = None,
        servers: Mapping[str, MetricsSource[ServerMetrics]] | None = None,
        *,
        namespace: str = "sse",
    ) -> None:
        super().__init__(clients, servers)
        self._client_prefix = f"{namespace}_client_"
        self._server_prefix = f"{namespace}_server_"

    def collect(self) -> Iterator[Metric]:
        """The metric families, read from every source now (called by the registry)."""
        yield from self._client_families(list(self.client_snapshots()))
        yield from self._server_families(list(self.server_snapshots()))

    def _client_families(self, snapshots: list[tuple[str, Metrics]]) -> Iterator[Metric]:
        prefix = self._client_prefix
        for field, name, text in _CLIENT_COUNTERS:
            counter = CounterMetricFamily(prefix + name, text, labels=["stream"])
            for stream, metrics in snapshots:
                counter.add_metric([stream], getattr(metrics, field))
            yield counter
        for field, name, text in _CLIENT_HISTOGRAMS:
            histogram = HistogramMetricFamily(prefix + name, text, labels=["stream"])
            for stream, metrics in snapshots:
                recorded: Histogram = getattr(metrics, field)
                histogram.add_metric(
                    [stream], [(le_label(le), count) for le, count in recorded.cumulative()],
                    recorded.total,
                )
            yield histogram
        for field, name, text in _CLIENT_RATIOS:
            ratio = GaugeMetricFamily(prefix + name, text, labels=["stream"])
            for stream, metrics in snapshots:
                value = getattr(metrics, field)
                if value is not None:
                    ratio.add_metric([stream], value)
            yield ratio
        buffered = GaugeMetricFamily(
            prefix + "buffered_messages", "Messages each buffer holds now.",
            labels=["stream", "buffer"],
        )
        for stream, metrics in snapshots:
            for buffer in _BUFFERS:
                buffered.add_metric([stream, buffer], getattr(metrics, f"buffered_in_{buffer}"))
        yield buffered

    def _server_families(self, snapshots: list[tuple[str, ServerMetrics]]) -> Iterator[Metric]:
        prefix = self._server_prefix
        connected = GaugeMetricFamily(
            prefix + "connected_clients", "Subscribers now.", labels=["server"]
        )
        for server, metrics in snapshots:
            connected.add_metric([server], metrics.connected_clients)
        yield connected
        for field, name, text in _SERVER_COUNTERS:
            counter = CounterMetricFamily(prefix + name, text, labels=["server"])
            for server, metrics in snapshots:
                counter.add_metric([server], getattr(metrics, field))
            yield counter
