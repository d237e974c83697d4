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
from ._exporters import BUFFERS, MetricsSource, Sources, le_label, series

__all__ = ["MetricsCollector"]


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
        for row in series("client", "counter"):
            counter = CounterMetricFamily(prefix + row.prometheus, row.text, labels=["stream"])
            for stream, metrics in snapshots:
                counter.add_metric([stream], getattr(metrics, row.field))
            yield counter
        for row in series("client", "histogram"):
            histogram = HistogramMetricFamily(prefix + row.prometheus, row.text, labels=["stream"])
            for stream, metrics in snapshots:
                recorded: Histogram = getattr(metrics, row.field)
                histogram.add_metric(
                    [stream], [(le_label(le), count) for le, count in recorded.cumulative()],
                    recorded.total,
                )
            yield histogram
        for row in series("client", "ratio"):
            ratio = GaugeMetricFamily(prefix + row.prometheus, row.text, labels=["stream"])
            for stream, metrics in snapshots:
                value = getattr(metrics, row.field)
                if value is not None:
                    ratio.add_metric([stream], value)
            yield ratio
        buffered = GaugeMetricFamily(
            prefix + "buffered_messages", "Messages each buffer holds now.",
            labels=["stream", "buffer"],
        )
        for stream, metrics in snapshots:
            for buffer in BUFFERS:
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
        for row in series("server", "counter"):
            counter = CounterMetricFamily(prefix + row.prometheus, row.text, labels=["server"])
            for server, metrics in snapshots:
                counter.add_metric([server], getattr(metrics, row.field))
            yield counter
