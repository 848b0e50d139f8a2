"""Histograms aggregated by polyfleet: the points the SDK's own histogram would export."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from temporalio.runtime import BUFFERED_METRIC_KIND_HISTOGRAM

from polyfleet.config import MetricsSettings
from polyfleet.telemetry import metrics
from polyfleet.telemetry.histograms import (
    ObservedHistogram,
    add_to_collections,
    exemplar_filter,
    wants_observed,
)
from polyfleet.telemetry.metrics import _Histograms, _TemporalForwarder
from tests.helpers import free_port, scrape_metrics

BOUNDS = (0.001, 0.01, 0.1, 1.0)
VALUES = (0.0005, 0.001, 0.003, 0.02, 0.02, 0.5, 7.0)


def histogram_points(
    data: MetricsData | None, name: str
) -> dict[frozenset[Any], HistogramDataPoint]:
    if data is None:
        return {}
    return {
        frozenset((point.attributes or {}).items()): cast(HistogramDataPoint, point)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    }


@pytest.fixture
def side_by_side() -> Iterator[tuple[Any, ObservedHistogram, InMemoryMetricReader]]:
    """The SDK's histogram and an observed one, both read by one in-memory reader."""
    reader = InMemoryMetricReader()
    resource = Resource.create({})
    provider = MeterProvider(metric_readers=[reader], resource=resource)
    meter = provider.get_meter("polyfleet")
    sdk = meter.create_histogram("sdk", "s", "d", explicit_bucket_boundaries_advisory=BOUNDS)
    observed = ObservedHistogram("observed", "s", "d", BOUNDS)
    assert add_to_collections(reader, [observed], resource, "polyfleet")
    try:
        yield sdk, observed, reader
    finally:
        provider.shutdown()


def same_point(ours: HistogramDataPoint, theirs: HistogramDataPoint) -> None:
    assert ours.attributes == theirs.attributes
    assert ours.count == theirs.count
    assert ours.sum == pytest.approx(theirs.sum)
    assert ours.bucket_counts == theirs.bucket_counts
    assert tuple(ours.explicit_bounds) == tuple(theirs.explicit_bounds)
    assert (ours.min, ours.max) == (theirs.min, theirs.max)
    assert ours.time_unix_nano >= ours.start_time_unix_nano


def test_the_points_are_the_sdk_histograms_cumulative_points(
    side_by_side: tuple[Any, ObservedHistogram, InMemoryMetricReader],
) -> None:
    sdk, observed, reader = side_by_side
    a, b = {"method": "a", "code": "OK"}, {"method": "b", "code": "OK"}
    for value in VALUES:
        sdk.record(value, a)
        observed.record(value, a)
    sdk.record(0.2, b)
    observed.record(0.2, b)
    first = reader.get_metrics_data()
    for value in (0.05, 2.0):  # a second collection is cumulative over both
        sdk.record(value, a)
        observed.record(value, a)
    second = reader.get_metrics_data()
    for data in (first, second):
        theirs, ours = histogram_points(data, "sdk"), histogram_points(data, "observed")
        assert theirs.keys() == ours.keys() == {frozenset(a.items()), frozenset(b.items())}
        for key in theirs:
            same_point(ours[key], theirs[key])
    assert histogram_points(second, "observed")[frozenset(a.items())].count == len(VALUES) + 2


def test_values_the_sdk_drops_are_dropped(
    side_by_side: tuple[Any, ObservedHistogram, InMemoryMetricReader],
) -> None:
    sdk, observed, reader = side_by_side
    for value in (-1.0, float("inf"), float("nan"), 0.5):
        sdk.record(value, {"k": "v"})
        observed.record(value, {"k": "v"})
    data = reader.get_metrics_data()
    (ours,) = histogram_points(data, "observed").values()
    (theirs,) = histogram_points(data, "sdk").values()
    same_point(ours, theirs)
    assert ours.count == 1


def test_exemplars_are_the_sdk_reservoirs(
    side_by_side: tuple[Any, ObservedHistogram, InMemoryMetricReader],
) -> None:
    sdk, observed, reader = side_by_side
    tracer = TracerProvider().get_tracer("test")
    attributes = {"k": "v"}
    sdk.record(0.5, attributes)  # outside a span: no exemplar (trace_based)
    observed.record(0.5, attributes)
    with tracer.start_as_current_span("one") as one:
        for value in (0.02, 0.03):  # one bucket: the last value is its exemplar
            sdk.record(value, attributes)
            observed.record(value, attributes)
    with tracer.start_as_current_span("two"):
        sdk.record(5.0, attributes)
        observed.record(5.0, attributes)
    data = reader.get_metrics_data()
    (ours,) = histogram_points(data, "observed").values()
    (theirs,) = histogram_points(data, "sdk").values()
    shown = [(e.value, e.span_id, e.trace_id, e.filtered_attributes) for e in ours.exemplars]
    assert shown == [
        (e.value, e.span_id, e.trace_id, e.filtered_attributes) for e in theirs.exemplars
    ]
    assert shown[0][:2] == (0.03, one.get_span_context().span_id)
    assert len(shown) == 2
    # Handed out once: the next collection has none until new values come.
    (again,) = histogram_points(reader.get_metrics_data(), "observed").values()
    assert again.exemplars == []


def test_always_on_and_always_off_exemplars() -> None:
    on = ObservedHistogram("on", "s", "d", BOUNDS, exemplars="always_on")
    off = ObservedHistogram("off", "s", "d", BOUNDS, exemplars="always_off")
    for histogram in (on, off):
        histogram.record(0.5, {"k": "v"})
    on_point = on.collect(1).data.data_points[0]  # type: ignore[union-attr]
    off_point = off.collect(1).data.data_points[0]  # type: ignore[union-attr]
    assert [(e.value, e.span_id) for e in on_point.exemplars] == [(0.5, None)]
    assert off_point.exemplars == []
    assert exemplar_filter({}) == "trace_based"
    with pytest.raises(ValueError, match="bogus"):
        exemplar_filter({"OTEL_METRICS_EXEMPLAR_FILTER": "bogus"})


def test_a_collection_with_nothing_else_recorded_carries_the_histogram() -> None:
    reader = InMemoryMetricReader()
    resource = Resource.create({"a": "b"})
    provider = MeterProvider(metric_readers=[reader], resource=resource)
    histograms: list[ObservedHistogram] = []
    assert add_to_collections(reader, histograms, resource, "polyfleet")
    assert reader.get_metrics_data() is None  # nothing at all yet
    histograms.append(ObservedHistogram("late", "s", "d"))  # made on first use, after setup
    histograms[0].record(42.0, {})
    data = reader.get_metrics_data()
    assert data is not None
    (collected,) = data.resource_metrics
    assert collected.resource.attributes["a"] == "b"
    (point,) = histogram_points(data, "late").values()
    assert point.count == 1 and point.explicit_bounds[:3] == (0.0, 5.0, 10.0)
    provider.shutdown()


def test_only_cumulative_explicit_bucket_readers_take_observed_histograms() -> None:
    assert wants_observed(InMemoryMetricReader())
    delta = InMemoryMetricReader(preferred_temporality={SdkHistogram: AggregationTemporality.DELTA})
    assert not wants_observed(delta)
    exponential = InMemoryMetricReader(
        preferred_aggregation={SdkHistogram: ExponentialBucketHistogramAggregation()}
    )
    assert not wants_observed(exponential)


def test_setup_with_one_prometheus_reader_observes_its_histograms() -> None:
    export = metrics.setup_metrics(
        MetricsSettings(port=free_port(), address="127.0.0.1"), "polyfleet-test", 0
    )
    try:
        metrics.STORE_COMMIT_DURATION.record(0.002)
        assert isinstance(metrics._instrument(metrics.STORE_COMMIT_DURATION), ObservedHistogram)
    finally:
        export.close()


def test_temporal_histograms_are_observed_too() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("polyfleet")
    observed: list[ObservedHistogram] = []
    assert add_to_collections(reader, observed, Resource.create({}), "polyfleet")
    forwarder = _TemporalForwarder(meter, _Histograms(meter, observed))
    latency = SimpleNamespace(
        name="temporal_request_latency",
        kind=BUFFERED_METRIC_KIND_HISTOGRAM,
        unit="duration",
        description="",
    )
    histogram = forwarder._create(latency)
    assert isinstance(histogram, ObservedHistogram) and observed == [histogram]
    provider.shutdown()


@pytest.mark.parametrize(
    ("variables", "observed"),
    [
        ({}, True),
        # An OTLP exporter asked for delta sums beside /metrics: two readers, the SDK's.
        (
            {
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:9",
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
                "OTEL_METRIC_EXPORT_INTERVAL": "600000",
            },
            False,
        ),
        # The SDK turned off: nothing is recorded, polyfleet's histograms neither.
        ({"OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_which_setups_aggregate_histograms_in_polyfleet(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], observed: bool
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    export = metrics.setup_metrics(MetricsSettings(port=port, address="127.0.0.1"), "t", 0)
    try:
        metrics.STORE_COMMIT_DURATION.record(0.002)
        instrument = metrics._instrument(metrics.STORE_COMMIT_DURATION)
        assert isinstance(instrument, ObservedHistogram) is observed
        count = "polyfleet_store_commit_duration_seconds_count 1.0"
        disabled = "OTEL_SDK_DISABLED" in variables
        assert (count in scrape_metrics(port).splitlines()) is not disabled
    finally:
        export.close()
