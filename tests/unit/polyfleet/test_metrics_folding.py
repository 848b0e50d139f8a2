"""Temporal's buffered SDK metrics folded per drain: fewer records, the same exported values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    BUFFERED_METRIC_KIND_HISTOGRAM,
    BufferedMetricKind,
)

from polyfleet.telemetry import metrics
from polyfleet.telemetry.metrics import _TemporalForwarder


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
    forwarder = _TemporalForwarder(provider.get_meter("test"))
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
