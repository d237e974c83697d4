"""Tests of the metrics exporters with the real libraries: a real asyncio server and client
exchange events on loopback, then ``prometheus_client`` scrapes the collector (its text
output, parsed back with its own parser) and the OpenTelemetry SDK collects the instruments
(its in-memory reader); both must show exactly what was exchanged."""

from __future__ import annotations

import asyncio
import random
import re
import threading
import urllib.request
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

prometheus_client = pytest.importorskip(
    "prometheus_client", reason="prometheus_client is in the peers extra"
)
pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is in the peers extra")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from sse_core import (  # noqa: E402
    ClientConfig,
    ClientSession,
    ClientState,
    Event,
    InvalidConfigError,
    Metrics,
    ServerConfig,
)
from sse_core.adapters._exporters import SERIES  # noqa: E402
from sse_core.adapters.asyncio import EventSource  # noqa: E402
from sse_core.adapters.otel import MetricsInstruments  # noqa: E402
from sse_core.adapters.prometheus import MetricsCollector  # noqa: E402
from sse_core.state import LATENCY_BOUNDS, ServerMetrics  # noqa: E402

from .test_asyncio import Watch, config, run, started_server  # noqa: E402

EVENTS = 7
STAMPED = ServerConfig(heartbeat_interval=None, is_send_time_stamped=True)


async def exchange() -> tuple[Metrics, ServerMetrics, Any, Any]:
    """Publish ``EVENTS`` stamped events to a real client; return the snapshots and both ends
    (still open, so the exporters read them live; the caller closes them)."""
    server, url = await started_server(config=STAMPED)
    source = EventSource(config(url, is_latency_measured=True))
    watch = Watch(source)
    await watch.until_state(ClientState.STREAMING)
    for i in range(EVENTS):
        server.publish(Event(data=f"tick {i}"))
    await watch.until_events(EVENTS)
    return source.metrics, server.broadcaster.metrics, (server, watch), source


async def close(ends: Any) -> None:
    server, watch = ends
    await watch.aclose()
    await server.aclose()


def scrape(collector: MetricsCollector) -> dict[str, Any]:
    """Scrape the collector through a real registry's text output, parsed back."""
    registry = prometheus_client.CollectorRegistry()
    registry.register(collector)
    text = prometheus_client.generate_latest(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family: Any, suffix: str = "", **labels: str) -> list[Any]:
    return [
        s for s in family.samples
        if s.name == family.name + suffix and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def value(family: Any, suffix: str = "", **labels: str) -> float:
    (sample,) = samples(family, suffix, **labels)
    return float(sample.value)


def test_prometheus_scrape_shows_the_exchange_exactly() -> None:
    """After 7 stamped events on loopback, the Prometheus text output has 7 messages, one
    attempt and no failure, 7 latencies (measured or skewed) in a histogram whose ``le``
    buckets are cumulative and end in ``+Inf`` with its count, and the server's 7 published
    events, one connected client and the very bytes it counted."""

    async def main() -> None:
        client, server_metrics, ends, source = await exchange()
        try:
            collector = MetricsCollector(
                {"ticks": source}, {"main": ends[0].broadcaster}
            )
            families = scrape(collector)
        finally:
            await close(ends)
        received = families["sse_client_messages_received"]
        assert received.type == "counter"
        assert value(received, "_total", stream="ticks") == EVENTS
        assert value(families["sse_client_connection_attempts"], "_total") == 1
        assert value(families["sse_client_connection_failures"], "_total") == 0
        assert value(families["sse_client_messages_deduplicated"], "_total") == 0
        assert value(families["sse_client_connection_failure_ratio"], stream="ticks") == 0.0
        assert value(families["sse_client_stream_completion_ratio"]) == 1.0

        latency = families["sse_client_latency_seconds"]
        assert latency.type == "histogram"
        buckets = samples(latency, "_bucket", stream="ticks")
        les = [s.labels["le"] for s in buckets]
        assert les == [*(repr(b) for b in LATENCY_BOUNDS), "+Inf"]
        counts = [s.value for s in buckets]
        assert counts == sorted(counts) and counts[-1] == client.latency.count
        assert [(float(le), c) for le, c in zip(les, counts, strict=True)] == [
            (b, c) for b, c in client.latency.cumulative()
        ]
        # Stamps are whole milliseconds, rounded: on loopback one can land ahead of its
        # arrival and count as skewed instead (see the metrics page's clock skew).
        skewed = value(families["sse_client_latency_skewed"], "_total")
        assert value(latency, "_count") + skewed == EVENTS
        assert (value(latency, "_count"), skewed) == (client.latency.count, client.latency_skewed)
        assert value(latency, "_sum") == pytest.approx(client.latency.total, abs=1e-9)
        # No connection has ended yet: the duration histogram is there, empty.
        assert value(families["sse_client_connection_duration_seconds"], "_count") == 0

        buffered = families["sse_client_buffered_messages"]
        assert {s.labels["buffer"] for s in buffered.samples} == {
            "sequencer", "assembler", "batcher"
        }
        assert sum(s.value for s in buffered.samples) == client.buffer_size == 0

        connected = families["sse_server_connected_clients"]
        assert connected.type == "gauge"
        assert value(connected, server="main") == 1
        assert value(families["sse_server_events_published"], "_total") == EVENTS
        sent = value(families["sse_server_sent_bytes"], "_total", server="main")
        assert sent == server_metrics.bytes_sent > 0
        assert value(families["sse_server_queue_drops"], "_total") == 0

    run(main)


def otel_points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """Every collected point: metric name -> [(attributes, point)], and the units."""
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points[metric.name] = [
                    (dict(p.attributes or {}), p) for p in metric.data.data_points
                ]
                points[metric.name + "#unit"] = [({}, metric.unit)]
    return points


def test_otel_in_memory_reader_reads_the_exchange_exactly() -> None:
    """The same exchange, collected by the OpenTelemetry SDK's in-memory reader: monotonic
    sums of 7 messages and 1 attempt with their units, the latency's count, sum and
    cumulative ``le`` buckets equal to the snapshot's, and the server's figures."""

    async def main() -> None:
        client, server_metrics, ends, source = await exchange()
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])
        try:
            MetricsInstruments(
                {"ticks": source}, {"main": ends[0].broadcaster},
                meter=provider.get_meter("test"),
            )
            points = otel_points(reader)
        finally:
            await close(ends)
            provider.shutdown()

        def one(name: str) -> tuple[dict[str, Any], Any]:
            (point,) = points[name]
            return point

        attributes, received = one("sse.client.messages.received")
        assert attributes == {"sse.stream": "ticks"}
        assert received.value == EVENTS
        assert points["sse.client.messages.received#unit"] == [({}, "{message}")]
        assert one("sse.client.connection.attempts")[1].value == 1
        assert points["sse.client.connection.attempts#unit"] == [({}, "{attempt}")]
        assert one("sse.client.connection.failures")[1].value == 0
        assert one("sse.client.stream.completion_ratio")[1].value == 1.0

        skewed = one("sse.client.latency.skewed")[1].value
        assert one("sse.client.latency.count")[1].value + skewed == EVENTS
        assert one("sse.client.latency.count")[1].value == client.latency.count
        assert one("sse.client.latency.sum")[1].value == pytest.approx(client.latency.total)
        assert points["sse.client.latency.sum#unit"] == [({}, "s")]
        buckets = {a["le"]: p.value for a, p in points["sse.client.latency.bucket"]}
        assert buckets == {
            ("+Inf" if b == float("inf") else repr(b)): c for b, c in client.latency.cumulative()
        }
        assert buckets["+Inf"] == client.latency.count
        assert "sse.client.connection.duration.p99" not in points  # no sample: no estimate

        buffered = {a["sse.buffer"]: p.value for a, p in points["sse.client.buffer.messages"]}
        assert buffered == {"sequencer": 0, "assembler": 0, "batcher": 0}

        attributes, connected = one("sse.server.connected_clients")
        assert (attributes, connected.value) == ({"sse.server": "main"}, 1)
        assert one("sse.server.events.published")[1].value == EVENTS
        assert one("sse.server.bytes_sent")[1].value == server_metrics.bytes_sent > 0
        assert points["sse.server.bytes_sent#unit"] == [({}, "By")]

    run(main)


def test_unknown_rates_have_no_sample_and_removed_sources_vanish() -> None:
    """A session that never connected has no failure ratio (``None``, not 0) in either
    exporter; after ``remove`` its series are gone from the next scrape."""
    session = ClientSession(ClientConfig(url="https://example.test/events"),
                            rng=random.Random(1))
    collector = MetricsCollector({"idle": session})
    families = scrape(collector)
    assert samples(families["sse_client_connection_failure_ratio"]) == []
    assert value(families["sse_client_connection_attempts"], "_total", stream="idle") == 0
    collector.remove("idle")
    assert samples(scrape(collector)["sse_client_connection_attempts"], "_total") == []

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    MetricsInstruments({"idle": session}, meter=provider.get_meter("test"))
    points = otel_points(reader)
    provider.shutdown()
    assert "sse.client.connection.failure_ratio" not in points
    assert points["sse.client.connection.attempts"][0][1].value == 0


def dropped_twice() -> ClientSession:
    """A session fed by hand: up 42 s, dropped; back 3 s later, up 2 s, dropped; back after
    0.3 s. So: connections 42 s and 2 s, reconnections of 3 s and 0.3 s, 3 attempts."""
    session = ClientSession(config("https://example.test/events"), rng=random.Random(7))
    head = [("content-type", "text/event-stream")]
    session.start(0.0)
    session.on_response(200, head, 0.0)
    session.on_data(b"data: a\n\n", 1.0)
    session.on_eof(42.0)
    reconnect(session, 45.0)
    session.on_response(200, head, 45.0)
    session.on_eof(47.0)
    reconnect(session, 47.3)
    session.on_response(200, head, 47.3)
    return session


def reconnect(session: ClientSession, before: float) -> None:
    """Let the session's backoff timer fire (the fast backoff: well within ``before``)."""
    due = session.next_deadline()
    assert due is not None and due < before
    session.on_timer(due)


def test_histograms_are_exact_in_both_exporters() -> None:
    """Connections of 42 s and 2 s and reconnections of 3 s and 0.3 s land in the buckets
    ``le=60`` / ``le=5`` and ``le=5`` / ``le=0.5``, cumulative in Prometheus and in the OTel
    ``.bucket`` counter alike, with the exact count and sum."""
    session = dropped_twice()
    metrics = session.metrics
    assert (metrics.connections.count, metrics.time_to_reconnect.count) == (2, 2)

    families = scrape(MetricsCollector({"s": session}))
    duration = families["sse_client_connection_duration_seconds"]
    cumulative = {s.labels["le"]: s.value for s in samples(duration, "_bucket")}
    assert (cumulative["1.0"], cumulative["5.0"], cumulative["15.0"]) == (0, 1, 1)
    assert (cumulative["60.0"], cumulative["86400.0"], cumulative["+Inf"]) == (2, 2, 2)
    assert value(duration, "_sum") == 44.0
    reconnect = families["sse_client_time_to_reconnect_seconds"]
    cumulative = {s.labels["le"]: s.value for s in samples(reconnect, "_bucket")}
    assert (cumulative["0.25"], cumulative["0.5"], cumulative["2.5"]) == (0, 1, 1)
    assert (cumulative["5.0"], cumulative["+Inf"]) == (2, 2)
    assert value(reconnect, "_sum") == pytest.approx(3.3)
    assert value(families["sse_client_reconnections"], "_total") == 2
    assert value(families["sse_client_connection_attempts"], "_total") == 3

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    MetricsInstruments({"s": session}, meter=provider.get_meter("test"))
    points = otel_points(reader)
    provider.shutdown()
    buckets = {a["le"]: p.value for a, p in points["sse.client.connection.duration.bucket"]}
    assert (buckets["5.0"], buckets["15.0"], buckets["60.0"], buckets["+Inf"]) == (1, 1, 2, 2)
    assert points["sse.client.connection.duration.sum"][0][1].value == 44.0
    assert points["sse.client.connection.duration.count"][0][1].value == 2
    assert points["sse.client.reconnection.duration.count"][0][1].value == 2
    p99 = points["sse.client.connection.duration.p99"][0][1].value
    assert p99 == metrics.connections.quantile(0.99) and 15.0 < p99 <= 42.0


class Torn:
    """A source whose first read fails as a snapshot torn by another thread does."""

    def __init__(self, metrics: Metrics) -> None:
        self.reads = 0
        self._metrics = metrics

    @property
    def metrics(self) -> Metrics:
        self.reads += 1
        if self.reads == 1:
            raise InvalidConfigError("count must be the sum of counts")
        return self._metrics


def test_a_torn_snapshot_is_read_again() -> None:
    """A snapshot that fails its validation once (read mid-update from another thread) is
    read again, and the scrape shows the second read's figures."""
    torn = Torn(Metrics(messages_received=3))
    families = scrape(MetricsCollector({"s": torn}))
    assert value(families["sse_client_messages_received"], "_total") == 3
    assert torn.reads >= 2


def test_the_docs_table_names_every_series_as_exported() -> None:
    """docs/adapters/exporters.rst's table lists each exported field under the names the
    exporters really use (Prometheus with ``_total`` on counters), and nothing else."""
    page = Path(__file__).resolve().parents[2] / "docs" / "adapters" / "exporters.rst"
    rows = re.findall(r"^.*?  ``(sse_\w+)(?:\{[^`]*\})?``.*?  ``(sse\.[\w.]+?)(?:\.\{[\w,.]+\})?``",
                      page.read_text(encoding="utf-8"), re.M)
    documented = set(rows)
    exported = {
        (f"sse_{row.side}_{row.prometheus}" + ("_total" if row.kind == "counter" else ""),
         f"sse.{row.side}.{row.otel}")
        for row in SERIES
    }
    gauges = {("sse_client_buffered_messages", "sse.client.buffer.messages"),
              ("sse_server_connected_clients", "sse.server.connected_clients")}
    assert documented == exported | gauges


def test_scrapes_over_http_while_events_stream() -> None:
    """Prometheus' own WSGI app, served from a thread on loopback, scraped over HTTP while a
    real client receives: every scrape parses, the counter never goes back and never passes
    what was published, and the last scrape, after the stream settles, counts them all."""

    async def main() -> None:
        server, url = await started_server()
        source = EventSource(config(url))
        watch = Watch(source)
        registry = prometheus_client.CollectorRegistry()
        registry.register(MetricsCollector({"live": source}, {"main": server.broadcaster}))
        httpd = make_server("127.0.0.1", 0, prometheus_client.make_wsgi_app(registry),
                            handler_class=_QuietHandler)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        endpoint = f"http://127.0.0.1:{httpd.server_port}/metrics"

        def received() -> float:
            with urllib.request.urlopen(endpoint, timeout=10) as response:
                text = response.read().decode()
            families = {f.name: f for f in text_string_to_metric_families(text)}
            return value(families["sse_client_messages_received"], "_total", stream="live")

        try:
            await watch.until_state(ClientState.STREAMING)
            seen: list[float] = []
            published = 0
            for _ in range(10):
                for _ in range(30):
                    server.publish(Event(data=f"tick {published}"))
                    published += 1
                seen.append(await asyncio.to_thread(received))
                assert seen[-1] <= published
            await watch.until_events(published)
            seen.append(await asyncio.to_thread(received))
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(10)
            await close((server, watch))
        assert seen == sorted(seen)
        assert seen[-1] == published == 300

    run(main)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test's output clean (wsgiref logs every request to stderr)."""
