"""OpenTelemetry instruments over the sessions' metrics (``pip install 'sse-core[otel]'``).

:class:`MetricsInstruments` creates asynchronous (observable) instruments through
``opentelemetry-api`` alone; their callbacks read the snapshots when the SDK collects --
the clients' :class:`~sse_core.Metrics` (attribute ``sse.stream``) and the broadcasters'
:class:`~sse_core.state.ServerMetrics` (attribute ``sse.server``). Names follow OpenTelemetry's
style (``sse.client.connection.attempts``, unit ``{attempt}``; seconds in ``s``, bytes in
``By``, ratios in ``1``).

The API has no observable histogram, and a synchronous one would take samples the snapshots
do not keep (a :class:`~sse_core.state.Histogram` holds bucket counts, not samples): recording
stand-in values would make the sum, minimum and maximum wrong. So each histogram ``B`` is
exported as what it exactly is -- observable counters ``B.count``, ``B.sum`` (seconds) and
``B.bucket`` (cumulative, attribute ``le``, the last ``+Inf``), and a gauge ``B.p99`` -- the
figures a Prometheus histogram holds, none estimated but the quantile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from .._metrics import Histogram, Metrics, ServerMetrics
from .._version import __version__
from ._exporters import BUFFERS, MetricsSource, Sources, le_label, series

__all__ = ["MetricsInstruments"]

_Callback = Callable[[CallbackOptions], Iterable[Observation]]


class MetricsInstruments(Sources):
    """Observable OpenTelemetry instruments over clients' and servers' metrics.

    Creating it creates the instruments on ``meter``; from then on every collection of the
    meter provider reads each source's ``metrics``. Sources can be added and removed at any
    time (:meth:`add_client`, :meth:`add_server`, :meth:`remove`). Counters are cumulative,
    as the snapshots are.

    Args:
        clients: Client sources (anything with ``.metrics`` -> :class:`~sse_core.Metrics`)
            by stream name (the ``sse.stream`` attribute).
        servers: Server sources (``.metrics`` -> :class:`~sse_core.state.ServerMetrics`, a
            :class:`~sse_core.Broadcaster`) by name (the ``sse.server`` attribute).
        meter: Where to create the instruments; by default
            ``opentelemetry.metrics.get_meter("sse_core", <version>)`` (the global provider).
        namespace: The names' first part (``sse``: ``sse.client...``).
    """

    def __init__(
        self,
        clients: Mapping[str, MetricsSource[Metrics]] | None = None,
        servers: Mapping[str, MetricsSource[ServerMetrics]] | None = None,
        *,
        meter: Meter | None = None,
        namespace: str = "sse",
    ) -> None:
        super().__init__(clients, servers)
        self._meter = meter or otel_metrics.get_meter("sse_core", __version__)
        self._create_client_instruments(f"{namespace}.client.")
        self._create_server_instruments(f"{namespace}.server.")

    def _client_snapshots(self) -> Iterator[tuple[dict[str, str], Metrics]]:
        for stream, metrics in self.client_snapshots():
            yield {"sse.stream": stream}, metrics

    def _server_snapshots(self) -> Iterator[tuple[dict[str, str], ServerMetrics]]:
        for name, metrics in self.server_snapshots():
            yield {"sse.server": name}, metrics

    def _create_client_instruments(self, prefix: str) -> None:
        meter = self._meter
        for row in series("client", "counter"):
            meter.create_observable_counter(
                prefix + row.otel, [self._client_field(row.field)], unit=row.unit,
                description=row.text,
            )
        for row in series("client", "histogram"):
            name, field, text = row.otel, row.field, row.text.rstrip(".")
            for part, part_unit, read in (
                ("count", row.unit, _histogram_count),
                ("sum", "s", _histogram_sum),
                ("bucket", row.unit, _histogram_buckets),
            ):
                meter.create_observable_counter(
                    f"{prefix}{name}.{part}", [self._client_histogram(field, read)],
                    unit=part_unit, description=f"{text}: {part}.",
                )
            meter.create_observable_gauge(
                f"{prefix}{name}.p99", [self._client_histogram(field, _histogram_p99)],
                unit="s", description=f"{text}: 99th percentile, estimated within its bucket.",
            )
        for row in series("client", "ratio"):
            meter.create_observable_gauge(
                prefix + row.otel, [self._client_field(row.field)], unit=row.unit,
                description=row.text,
            )
        meter.create_observable_up_down_counter(
            prefix + "buffer.messages", [self._buffered], unit="{message}",
            description="Messages each buffer holds now (attribute sse.buffer).",
        )

    def _create_server_instruments(self, prefix: str) -> None:
        meter = self._meter
        meter.create_observable_up_down_counter(
            prefix + "connected_clients", [self._server_field("connected_clients")],
            unit="{client}", description="Subscribers now.",
        )
        for row in series("server", "counter"):
            meter.create_observable_counter(
                prefix + row.otel, [self._server_field(row.field)], unit=row.unit,
                description=row.text,
            )

    def _client_field(self, field: str) -> _Callback:
        def observe(options: CallbackOptions) -> Iterator[Observation]:
            for attributes, metrics in self._client_snapshots():
                value = getattr(metrics, field)
                if value is not None:  # a rate while unknown
                    yield Observation(value, attributes)

        return observe

    def _client_histogram(
        self, field: str, read: Callable[[Histogram, dict[str, str]], Iterator[Observation]]
    ) -> _Callback:
        def observe(options: CallbackOptions) -> Iterator[Observation]:
            for attributes, metrics in self._client_snapshots():
                yield from read(getattr(metrics, field), attributes)

        return observe

    def _buffered(self, options: CallbackOptions) -> Iterator[Observation]:
        for attributes, metrics in self._client_snapshots():
            for buffer in BUFFERS:
                yield Observation(
                    getattr(metrics, f"buffered_in_{buffer}"), {**attributes, "sse.buffer": buffer}
                )

    def _server_field(self, field: str) -> _Callback:
        def observe(options: CallbackOptions) -> Iterator[Observation]:
            for attributes, metrics in self._server_snapshots():
                yield Observation(getattr(metrics, field), attributes)

        return observe


def _histogram_count(histogram: Histogram, attributes: dict[str, str]) -> Iterator[Observation]:
    yield Observation(histogram.count, attributes)


def _histogram_sum(histogram: Histogram, attributes: dict[str, str]) -> Iterator[Observation]:
    yield Observation(histogram.total, attributes)


def _histogram_buckets(histogram: Histogram, attributes: dict[str, str]) -> Iterator[Observation]:
    for bound, count in histogram.cumulative():
        yield Observation(count, {**attributes, "le": le_label(bound)})


def _histogram_p99(histogram: Histogram, attributes: dict[str, str]) -> Iterator[Observation]:
    p99 = histogram.quantile(0.99)
    if p99 is not None:
        yield Observation(p99, attributes)
