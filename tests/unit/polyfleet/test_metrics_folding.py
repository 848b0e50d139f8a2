"""Temporal's buffered SDK metrics folded per drain, and polyfleet's gauges and counters kept
and observed: fewer records, the same exported values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pytest
from opentelemetry.sdk.metrics import (
    Counter,
    MeterProvider,
    ObservableCounter,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricsData,
    Sum,
)
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    BUFFERED_METRIC_KIND_HISTOGRAM,
    BufferedMetricKind,
)

from polyfleet.telemetry import metrics
from polyfleet.telemetry.metrics import _Histograms, _TemporalForwarder


@dataclass(frozen=True)
class FakeMetric:
    name: str
    kind: BufferedMetricKind
    unit: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class FakeUpdate:
    metric: FakeMetric
    value: float
    attributes: Mapping[str, str | int | float | bool]


class FakeBuffer:
    """Hands out the batches given to it, one per retrieve_updates, as Temporal's buffer does."""

    def __init__(self) -> None:
        self.batches: list[Sequence[FakeUpdate]] = []

    def retrieve_updates(self) -> Sequence[FakeUpdate]:
        return self.batches.pop(0) if self.batches else []


REQUESTS = FakeMetric("temporal_request", BUFFERED_METRIC_KIND_COUNTER)
SLOTS = FakeMetric("temporal_worker_task_slots_available", BUFFERED_METRIC_KIND_GAUGE)
LATENCY = FakeMetric("temporal_request_latency", BUFFERED_METRIC_KIND_HISTOGRAM, "duration")


class Counting:
    """Wraps an instrument and counts the calls that reach the SDK."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any) -> Any:
            self.calls += 1
            return getattr(self.inner, method)(*args)

        return call


@pytest.fixture
def forwarding() -> Iterator[tuple[_TemporalForwarder, FakeBuffer, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("test")
    forwarder = _TemporalForwarder(meter, _Histograms(meter))
    buffer = FakeBuffer()
    forwarder.buffer = buffer  # type: ignore[assignment]
    try:
        yield forwarder, buffer, reader
    finally:
        provider.shutdown()


def points(reader: InMemoryMetricReader, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
    data = reader.get_metrics_data()
    if data is None:  # nothing recorded at all
        return {}
    return {
        frozenset((point.attributes or {}).items()): point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    }


def key(**attributes: str) -> frozenset[tuple[str, str]]:
    return frozenset(attributes.items())


def test_counter_deltas_are_summed_per_attribute_set(
    forwarding: tuple[_TemporalForwarder, FakeBuffer, InMemoryMetricReader],
) -> None:
    forwarder, buffer, reader = forwarding
    a, same_values_other_object, b = {"q": "a"}, {"q": "a"}, {"q": "b"}
    buffer.batches.append(
        [
            FakeUpdate(REQUESTS, 1, a),
            FakeUpdate(REQUESTS, 2, b),
            FakeUpdate(REQUESTS, 3, a),
            FakeUpdate(REQUESTS, 4, same_values_other_object),
        ]
    )
    buffer.batches.append([FakeUpdate(REQUESTS, 5, a)])
    forwarder.drain()
    counting = forwarder._instruments["temporal_request"] = Counting(
        forwarder._instruments["temporal_request"]
    )
    forwarder.drain()
    shown = points(reader, "temporal_request")
    assert shown[key(q="a")].value == 1 + 3 + 4 + 5  # cumulative over drains
    assert shown[key(q="b")].value == 2
    assert counting.calls == 1  # the second drain's one update: one add


def test_a_gauge_keeps_the_last_value_of_each_attribute_set(
    forwarding: tuple[_TemporalForwarder, FakeBuffer, InMemoryMetricReader],
) -> None:
    forwarder, buffer, reader = forwarding
    a, same_values_other_object, b = {"q": "a"}, {"q": "a"}, {"q": "b"}
    buffer.batches.append(
        [
            FakeUpdate(SLOTS, 5, a),
            FakeUpdate(SLOTS, 9, b),
            FakeUpdate(SLOTS, 7, same_values_other_object),
            FakeUpdate(SLOTS, 3, a),
        ]
    )
    forwarder.drain()
    shown = points(reader, "temporal_worker_task_slots_available")
    assert shown[key(q="a")].value == 3
    assert shown[key(q="b")].value == 9
    buffer.batches.append([FakeUpdate(SLOTS, 4, b)])
    forwarder.drain()
    shown = points(reader, "temporal_worker_task_slots_available")
    assert (shown[key(q="a")].value, shown[key(q="b")].value) == (3, 4)


def test_every_histogram_value_is_recorded(
    forwarding: tuple[_TemporalForwarder, FakeBuffer, InMemoryMetricReader],
) -> None:
    forwarder, buffer, reader = forwarding
    a = {"q": "a"}
    values = [0.002, 0.2, 0.2, 7.0]
    buffer.batches.append([FakeUpdate(LATENCY, value, a) for value in values])
    forwarder.drain()
    point = points(reader, "temporal_request_latency")[key(q="a")]
    assert point.count == len(values)
    assert point.sum == pytest.approx(sum(values))
    assert sum(point.bucket_counts) == len(values)
    # The SLOW_BUCKETS boundaries: 0.002 below 0.01, both 0.2s in (0.1, 0.25], 7 in (5, 10].
    bounds = list(point.explicit_bounds)
    assert point.bucket_counts[0] == 1
    assert point.bucket_counts[bounds.index(0.25)] == 2
    assert point.bucket_counts[bounds.index(10.0)] == 1


def test_attribute_values_become_text_once_per_attribute_set(
    forwarding: tuple[_TemporalForwarder, FakeBuffer, InMemoryMetricReader],
) -> None:
    forwarder, buffer, reader = forwarding
    attributes = {"sticky": True, "slots": 2}
    buffer.batches.append([FakeUpdate(REQUESTS, 1, attributes), FakeUpdate(SLOTS, 8, attributes)])
    forwarder.drain()
    assert points(reader, "temporal_request")[key(sticky="True", slots="2")].value == 1
    assert (
        points(reader, "temporal_worker_task_slots_available")[key(sticky="True", slots="2")].value
        == 8
    )


def test_an_empty_drain_records_nothing(
    forwarding: tuple[_TemporalForwarder, FakeBuffer, InMemoryMetricReader],
) -> None:
    forwarder, _, reader = forwarding
    forwarder.drain()
    assert points(reader, "temporal_request") == {}


def test_an_observed_gauge_exports_the_last_value_set_per_attribute_set() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        gauge = metrics._ObservedGauge(provider.get_meter("test"), "g", "By", "a gauge")
        for value in (10.0, 30.0, 20.0):
            gauge.set(value, {})
        gauge.set(5.0, {"kind": "agent"})
        shown = points(reader, "g")
        assert shown[frozenset()].value == 20.0
        assert shown[key(kind="agent")].value == 5.0
        gauge.set(40.0, {})
        assert points(reader, "g")[frozenset()].value == 40.0  # read again at each collection
    finally:
        provider.shutdown()


@pytest.mark.parametrize("temporality", ["cumulative", "delta"])
@pytest.mark.parametrize("kind", [metrics.Kind.COUNTER, metrics.Kind.UP_DOWN_COUNTER])
def test_an_observed_sum_exports_what_the_sdks_counter_would(
    kind: metrics.Kind, temporality: str
) -> None:
    chosen = (
        AggregationTemporality.DELTA
        if temporality == "delta"
        else AggregationTemporality.CUMULATIVE
    )
    every_kind: dict[type, AggregationTemporality] = {
        Counter: chosen,
        ObservableCounter: chosen,
        UpDownCounter: chosen,
        ObservableUpDownCounter: chosen,
    }
    ours, theirs = InMemoryMetricReader(every_kind), InMemoryMetricReader(every_kind)
    providers = [MeterProvider(metric_readers=[ours]), MeterProvider(metric_readers=[theirs])]
    metric = metrics.Metric("requests", kind, "{request}", "requests", ("code",))
    try:
        observed = metrics._ObservedSum(providers[0].get_meter("test"), metric)
        meter = providers[1].get_meter("test")
        sdk = (
            meter.create_counter("requests", "{request}", "requests")
            if kind is metrics.Kind.COUNTER
            else meter.create_up_down_counter("requests", "{request}", "requests")
        )
        amounts = [(1, "OK"), (2, "OK"), (1, "NOT_FOUND"), (-1, "OK"), (3, "OK")]
        for collection in range(2):  # a second collection shows how the sums carry on
            for amount, code in amounts[collection * 3 : collection * 3 + 3]:
                observed.add(amount, {"code": code})
                sdk.add(amount, {"code": code})
            expected = {
                attributes: (point.value, point.attributes)
                for attributes, point in points(theirs, "requests").items()
            }
            shown = {a: (p.value, p.attributes) for a, p in points(ours, "requests").items()}
            # Delta: a series unchanged since the last collection is a 0 here, where the
            # SDK's synchronous counter leaves it out; both say nothing was added.
            assert {a: v for a, v in shown.items() if a in expected or v[0] != 0} == expected
            assert expected  # something was compared
        sums = [
            cast(Sum, metric.data)
            for reader in (ours, theirs)
            for resource in (reader.get_metrics_data() or MetricsData([])).resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        ]
        assert {(s.is_monotonic, s.aggregation_temporality) for s in sums} == {
            (kind is metrics.Kind.COUNTER, chosen)
        }
    finally:
        for provider in providers:
            provider.shutdown()
