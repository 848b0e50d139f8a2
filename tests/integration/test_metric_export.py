"""Metrics over OTLP and on `/metrics` at once: the same values, from one reader or two.

A real OTLP/gRPC metrics receiver on loopback and the real `/metrics` endpoint; the process's
metrics are set up as ``python -m orchestrator`` sets them up, from the ``OTEL_*`` variables.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import AggregationTemporality
from temporalio.runtime import MetricBuffer, PrometheusConfig, Runtime, TelemetryConfig

from polyfleet.config import MetricsSettings
from polyfleet.telemetry import metrics
from polyfleet.telemetry.metric_reader import PrometheusAndOtlpReader
from tests.helpers import assert_eventually, free_port, scrape_metrics
from tests.otlp import OtlpReceiver

COUNTER = metrics.EXECUTIONS_CREATED
LABELS = {"kind": "agent", "name": "exported"}
CUMULATIVE = AggregationTemporality.CUMULATIVE.value


class _Receiver(OtlpReceiver):
    """The shared receiver, reading back the points of :data:`COUNTER`."""

    def points(self) -> list[tuple[int, float]]:
        """(temporality, value) of every exported point of :data:`COUNTER`, in order."""
        return [
            (metric.sum.aggregation_temporality, point.as_double or point.as_int)
            for request in self.metric_requests()
            for resource in request.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == COUNTER.name
            for point in metric.sum.data_points
            if {a.key: a.value.string_value for a in point.attributes} == LABELS
        ]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Receiver]:
    """The receiver, and the ``OTEL_*`` variables that send this process's metrics to it."""
    receiver = _Receiver()
    with receiver.serving() as endpoint:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
        yield receiver


def _scraped(port: int) -> float | None:
    text = scrape_metrics(port)
    prefix = f'{COUNTER.prometheus_name()}{{kind="agent",name="exported"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else None


async def test_one_reader_serves_the_scrape_and_the_export(receiver: _Receiver) -> None:
    export = metrics.setup_metrics(
        MetricsSettings(port=free_port(), address="127.0.0.1"), "polyfleet-test", 0
    )
    try:
        # Each value is aggregated once: one reader, the shared one.
        assert [type(r) for r in export.readers] == [PrometheusAndOtlpReader]
        COUNTER.add(2, **LABELS)
        await assert_eventually(
            lambda: _async(receiver.points), lambda points: (CUMULATIVE, 2) in points
        )
        COUNTER.add(1, **LABELS)
        assert _scraped(export.port) == 3  # a scrape between exports reads the sum now
        await assert_eventually(
            lambda: _async(receiver.points), lambda points: points[-1] == (CUMULATIVE, 3)
        )
        # Exports are cumulative and never ahead of what was recorded.
        assert all(value in (2, 3) for _, value in receiver.points())
    finally:
        export.close()
    exported = len(receiver.points())
    export.close()  # idempotent, and no export after it
    assert len(receiver.points()) == exported


async def test_a_delta_exporter_keeps_a_reader_of_its_own(
    receiver: _Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deltas would reset what /metrics shows: the exporter cannot share Prometheus' reader.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
    export = metrics.setup_metrics(
        MetricsSettings(port=free_port(), address="127.0.0.1"), "polyfleet-test", 0
    )
    try:
        assert len(export.readers) == 2
        # Temporal's runtime could aggregate for one reader only: its metrics go through the
        # buffer then.
        assert isinstance(metrics.temporal_metrics(), MetricBuffer)
        COUNTER.add(2, **LABELS)
        await assert_eventually(lambda: _async(receiver.points), lambda points: len(points) >= 1)
        COUNTER.add(1, **LABELS)
        await assert_eventually(
            lambda: _async(receiver.points),
            lambda points: sum(value for _, value in points) == 3,
        )
        assert {temporality for temporality, _ in receiver.points()} == {
            AggregationTemporality.DELTA.value
        }
        assert _scraped(export.port) == 3
    finally:
        export.close()


async def test_without_a_metrics_port_the_export_still_runs(receiver: _Receiver) -> None:
    export = metrics.setup_metrics(MetricsSettings(port=0), "polyfleet-test", 0)
    try:
        assert len(export.readers) == 1
        assert metrics.enabled() and metrics.temporal_metrics() is not None
        COUNTER.add(4, **LABELS)
        await assert_eventually(
            lambda: _async(receiver.points), lambda points: (CUMULATIVE, 4) in points
        )
    finally:
        export.close()


async def _async(read: Any) -> Any:
    return read()


def _exported_names(receiver: OtlpReceiver) -> set[str]:
    return {
        metric.name
        for request in receiver.metric_requests()
        for resource in request.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


async def test_temporal_metrics_reach_both_endpoints_from_the_runtime_aggregation(
    receiver: _Receiver,
) -> None:
    export = metrics.setup_metrics(
        MetricsSettings(port=free_port(), address="127.0.0.1"), "polyfleet-test", 0
    )
    try:
        # One reader for both: Temporal's runtime aggregates its metrics and serves them.
        config = metrics.temporal_metrics()
        assert isinstance(config, PrometheusConfig) and config.bind_address.startswith("127.")
        runtime = Runtime(telemetry=TelemetryConfig(metrics=config))
        runtime.metric_meter.create_counter("temporal_test_exported", "requests").add(
            5, {"task_queue": "q"}
        )

        await assert_eventually(
            lambda: _async(lambda: _exported_names(receiver)),
            lambda names: "temporal_test_exported" in names,
        )
        assert (
            'temporal_test_exported_total{service_name="temporal-core-sdk",task_queue="q"} 5.0'
            in (scrape_metrics(export.port))
        )
    finally:
        export.close()
