"""The metric table and the per-process setup: what `/metrics` really shows."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.runtime import Runtime, TelemetryConfig

from polyfleet.config import ConfigError, MetricsSettings
from polyfleet.telemetry import metrics
from polyfleet.telemetry.metric_reader import shares_collections
from polyfleet.telemetry.metrics import METRICS, Kind, Metric, setup_metrics
from tests.helpers import free_port, scrape_metrics

ROOT = Path(__file__).resolve().parents[3]
SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? ", re.M)


def series_names(text: str) -> set[str]:
    return set(SERIES.findall(text))


@pytest.fixture
def export() -> Iterator[metrics.MetricsExport]:
    started = setup_metrics(
        MetricsSettings(port=free_port(), address="127.0.0.1"), "polyfleet-test", 0
    )
    try:
        yield started
    finally:
        started.close()


def test_every_metric_is_defined_once_with_bounded_labels() -> None:
    names = [m.name for m in METRICS]
    assert len(names) == len(set(names))
    prometheus = [m.prometheus_name() for m in METRICS]
    assert len(prometheus) == len(set(prometheus))
    for metric in METRICS:
        assert re.fullmatch(r"polyfleet(\.[a-z_]+)+", metric.name), metric.name
        assert metric.process in ("orchestrator", "runner")
        assert metric.description
        # IDs as labels would make a series per execution.
        assert not any(label.endswith("id") for label in metric.labels), metric


def test_every_metric_is_recorded_somewhere() -> None:
    code = "\n".join(
        path.read_text()
        for package in ("orchestrator", "runner", "store", "polyfleet")
        for path in (ROOT / package).rglob("*.py")
        if path.name != "metrics.py"
    )
    constants = {name for name, value in vars(metrics).items() if isinstance(value, Metric)}
    assert len(constants) == len(METRICS)
    unused = sorted(name for name in constants if not re.search(rf"\b{name}\b", code))
    assert unused == []


def test_without_setup_recording_is_a_no_op() -> None:
    assert not metrics.enabled()
    metrics.EXECUTIONS_CREATED.add(1, kind="agent", name="a")
    assert metrics.temporal_metrics() is None


def test_wrong_labels_are_refused(export: metrics.MetricsExport) -> None:
    with pytest.raises(ValueError, match=r"polyfleet\.executions\.created takes labels"):
        metrics.EXECUTIONS_CREATED.add(1, kind="agent")


def test_the_endpoint_shows_every_kind_under_the_names_the_table_gives(
    export: metrics.MetricsExport,
) -> None:
    for metric in METRICS:
        labels = dict.fromkeys(metric.labels, "x")
        if metric.kind is Kind.HISTOGRAM:
            metric.record(0.2, **labels)
        elif metric.kind is Kind.GAUGE:
            metric.set(3, **labels)
        else:
            metric.add(2, **labels)
    shown = series_names(scrape_metrics(export.port))
    for metric in METRICS:
        assert set(metric.series()) <= shown, (metric.name, sorted(shown))
    text = scrape_metrics(export.port)
    assert 'polyfleet_executions_created_total{kind="x",name="x"} 2.0' in text
    assert 'polyfleet_store_commit_duration_seconds_bucket{le="0.25"} 1.0' in text
    assert 'service_name="polyfleet-test"' in text  # target_info carries the service


def test_a_gauge_shows_the_last_value_set(export: metrics.MetricsExport) -> None:
    # Gauges are observed at collection (the store sets its size after every commit).
    for size in (4096, 12288, 8192):
        metrics.STORE_SIZE.set(size)
    assert "polyfleet_store_size_bytes 8192.0" in scrape_metrics(export.port).splitlines()
    metrics.STORE_SIZE.set(16384)
    assert "polyfleet_store_size_bytes 16384.0" in scrape_metrics(export.port).splitlines()


def test_temporal_sdk_metrics_are_forwarded_to_the_same_endpoint(
    export: metrics.MetricsExport,
) -> None:
    runtime = Runtime(telemetry=TelemetryConfig(metrics=export.temporal_metrics))
    meter = runtime.metric_meter
    meter.create_counter("temporal_test_requests", "requests").add(3, {"task_queue": "q"})
    meter.create_histogram_timedelta("temporal_test_latency", unit="duration").record(
        timedelta(milliseconds=250), {"task_queue": "q"}
    )
    text = scrape_metrics(export.port)  # a scrape drains Temporal's buffer first
    assert re.search(r'temporal_test_requests_total\{[^}]*task_queue="q"\} 3\.0', text), text
    assert re.search(r'temporal_test_latency_seconds_sum\{[^}]*task_queue="q"\} 0\.25', text)


def test_a_second_setup_in_one_process_is_refused(export: metrics.MetricsExport) -> None:
    with pytest.raises(RuntimeError, match="already set up"):
        setup_metrics(MetricsSettings(port=0), "again", 0)


def test_close_turns_recording_off_and_frees_the_port() -> None:
    port = free_port()
    setup_metrics(MetricsSettings(port=port, address="127.0.0.1"), "s", 0).close()
    assert not metrics.enabled()
    with socket.create_server(("127.0.0.1", port)):
        pass


def test_a_port_in_use_is_a_config_error_naming_the_variable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"POLYFLEET_METRICS_PORT={port}"):
            setup_metrics(MetricsSettings(port=port, address="127.0.0.1"), "s", 0)
    assert not metrics.enabled()


def test_port_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYFLEET_METRICS_PORT", "")
    assert MetricsSettings().port is None
    monkeypatch.setenv("POLYFLEET_METRICS_PORT", "70000")
    with pytest.raises(ConfigError, match="POLYFLEET_METRICS_PORT='70000'"):
        MetricsSettings()


def test_no_port_and_no_otlp_endpoint_turn_metrics_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing would read them: recording and Temporal's buffer would cost CPU for nothing.
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", raising=False)
    export = setup_metrics(MetricsSettings(port=0), "s", 0)
    try:
        assert export.port == 0
        assert export.readers == ()
        assert not metrics.enabled()
        assert metrics.temporal_metrics() is None
        assert export.temporal_metrics is None  # no buffer made for nobody
        metrics.EXECUTIONS_CREATED.add(1, kind="agent", name="a")  # a no-op
    finally:
        export.close()
    export.close()  # idempotent
    setup_metrics(MetricsSettings(port=0), "s", 0).close()  # and nothing stays set up


@pytest.mark.parametrize(
    ("variable", "value", "shares"),
    [
        (None, None, True),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "cumulative", True),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta", False),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "lowmemory", False),
        (
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
            "explicit_bucket_histogram",
            True,
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
            "base2_exponential_bucket_histogram",
            False,
        ),
    ],
)
def test_otlp_shares_the_prometheus_reader_only_when_it_wants_the_same_collections(
    monkeypatch: pytest.MonkeyPatch, variable: str | None, value: str | None, shares: bool
) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    if variable is not None and value is not None:
        monkeypatch.setenv(variable, value)
    exporter = OTLPMetricExporter(endpoint="http://127.0.0.1:9", insecure=True)
    try:
        assert shares_collections(exporter) is shares
    finally:
        exporter.shutdown()
