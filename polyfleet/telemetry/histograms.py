"""Histograms aggregated by polyfleet and added to every collection of the metric reader.

The OpenTelemetry SDK has no asynchronous histogram, and its synchronous one takes every
value through its measurement pipeline: a ``Measurement``, the exemplar filter, a context
lookup, the attribute set's key and lock, the bucket, and an exemplar reservoir. That is
10 to 11 µs a value in-process, 14 to 19 µs inside a sampled span (docs/benchmarks.md), and the
fleet records values for every API call, every store commit and many of Temporal's own
latencies. :class:`ObservedHistogram` keeps the same aggregation itself (bucket counts, sum,
count, min, max and one exemplar per bucket, as the SDK's default reservoir keeps them) for
3 to 5 µs a value, and :func:`add_to_collections` makes the reader's collections carry its
points next to the SDK's, so ``/metrics`` and OTLP export the same series as before.

Its points are cumulative and in explicit buckets: what Prometheus reads and what an OTLP
exporter wants by default. :func:`polyfleet.telemetry.metrics.setup_metrics` uses it only
for a single reader that wants exactly that, and the SDK's histograms otherwise.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics._internal.aggregation import (
    _DEFAULT_EXPLICIT_BUCKET_HISTOGRAM_AGGREGATION_BOUNDARIES as _SDK_DEFAULT_BOUNDARIES,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import INVALID_SPAN

from polyfleet.telemetry.metric_reader import is_default_aggregation

logger = logging.getLogger(__name__)

#: The SDK's buckets for a histogram given none (OpenTelemetry's specification), taken
#: from the SDK so the two cannot differ.
DEFAULT_BOUNDARIES: tuple[float, ...] = tuple(_SDK_DEFAULT_BOUNDARIES)

# OTEL_METRICS_EXEMPLAR_FILTER values, as the SDK reads them.
_EXEMPLAR_FILTERS = ("trace_based", "always_on", "always_off")

Collect = Callable[..., "MetricsData | None"]
# An exemplar as kept until collected: value, time, span ID, trace ID.
_Sample = tuple[float, int, int | None, int | None]


def exemplar_filter(environ: dict[str, str] | None = None) -> str:
    """``OTEL_METRICS_EXEMPLAR_FILTER``: ``trace_based`` (default), ``always_on`` or ``always_off``.

    Raises:
        ValueError: Another value (the SDK's MeterProvider refuses it too).

    """
    value = (os.environ if environ is None else environ).get(
        "OTEL_METRICS_EXEMPLAR_FILTER", "trace_based"
    )
    if value not in _EXEMPLAR_FILTERS:
        raise ValueError(f"Unknown exemplar filter '{value}'.")
    return value


class _Point:
    """One attribute set's aggregation since the process started."""

    __slots__ = ("attributes", "counts", "exemplars", "max", "min", "start", "sum")

    def __init__(self, attributes: dict[str, str], buckets: int, start: int) -> None:
        self.attributes = attributes
        self.counts = [0] * buckets
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.start = start
        # Bucket index -> its last exemplar since the last collection.
        self.exemplars: dict[int, _Sample] = {}


class ObservedHistogram:
    """A histogram in explicit buckets, aggregated here and read at each collection.

    Args:
        name: The metric's name.
        unit: Its unit.
        description: Its description.
        boundaries: The buckets' upper bounds; empty means :data:`DEFAULT_BOUNDARIES`.
        exemplars: ``OTEL_METRICS_EXEMPLAR_FILTER`` (see :func:`exemplar_filter`).

    """

    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        boundaries: Sequence[float] = (),
        exemplars: str = "trace_based",
    ) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self._bounds = tuple(boundaries) or DEFAULT_BOUNDARIES
        self._trace_based = exemplars == "trace_based"
        self._exemplars = exemplars != "always_off"
        # Values come from the event loop and from other threads (the store's writer,
        # the Temporal drain).
        self._lock = threading.Lock()
        self._points: dict[frozenset[tuple[str, str]], _Point] = {}

    def record(self, value: float, attributes: dict[str, str]) -> None:
        """Add ``value`` to the aggregation of ``attributes`` (a dict not mutated later)."""
        if not 0 <= value < math.inf:
            # What the SDK's histogram does with a negative or non-finite value too.
            logger.warning("%s: a histogram cannot record %s; dropped", self.name, value)
            return
        index = bisect_left(self._bounds, value)
        exemplar: _Sample | None = None
        if self._exemplars:
            span = trace.get_current_span()
            if span is INVALID_SPAN:
                if not self._trace_based:
                    exemplar = (value, time.time_ns(), None, None)
            else:
                context = span.get_span_context()
                if context.trace_flags.sampled or not self._trace_based:
                    exemplar = (value, time.time_ns(), context.span_id, context.trace_id)
        key = frozenset(attributes.items())
        with self._lock:
            point = self._points.get(key)
            if point is None:
                point = self._points[key] = _Point(
                    attributes, len(self._bounds) + 1, time.time_ns()
                )
            point.counts[index] += 1
            point.sum += value
            if value < point.min:
                point.min = value
            if value > point.max:
                point.max = value
            if exemplar is not None:
                point.exemplars[index] = exemplar

    def collect(self, now: int) -> Metric | None:
        """The cumulative points at ``now`` (nanoseconds); None before the first value.

        The exemplars are those of the values since the last collection (then cleared), as
        the SDK's reservoir hands them out.
        """
        points = []
        with self._lock:
            for point in self._points.values():
                exemplars = [
                    _exemplar(point.attributes, *exemplar)
                    for _, exemplar in sorted(point.exemplars.items())
                ]
                point.exemplars = {}
                points.append(
                    HistogramDataPoint(
                        attributes=point.attributes,
                        start_time_unix_nano=point.start,
                        time_unix_nano=now,
                        count=sum(point.counts),
                        sum=point.sum,
                        bucket_counts=tuple(point.counts),
                        explicit_bounds=self._bounds,
                        min=point.min,
                        max=point.max,
                        exemplars=exemplars,
                    )
                )
        if not points:
            return None
        return Metric(
            name=self.name,
            description=self.description,
            unit=self.unit,
            data=Histogram(points, AggregationTemporality.CUMULATIVE),
        )


def _exemplar(
    attributes: dict[str, str], value: float, at: int, span_id: int | None, trace_id: int | None
) -> Exemplar:
    # Every attribute of the value is the point's, so none is left to filter in.
    return Exemplar({} if attributes else None, value, at, span_id, trace_id)


def wants_observed(reader: MetricReader) -> bool:
    """Whether ``reader`` collects histograms as :class:`ObservedHistogram` aggregates them.

    True for cumulative temporality and the default explicit-bucket aggregation (what
    Prometheus reads, and what an OTLP exporter asks for unless told otherwise).
    """
    temporality = _histograms_entry(reader._instrument_class_temporality)
    aggregation = _histograms_entry(reader._instrument_class_aggregation)
    return temporality is AggregationTemporality.CUMULATIVE and is_default_aggregation(aggregation)


def _histograms_entry(by_class: Mapping[Any, object]) -> object:
    # The reader's tables are keyed by the SDK's private instrument classes (_Histogram).
    for cls, value in by_class.items():
        if issubclass(cls, SdkHistogram):
            return value
    return None


def add_to_collections(
    reader: MetricReader,
    histograms: list[ObservedHistogram],
    resource: Resource,
    scope: str,
    more: Callable[[int], list[Metric]] | None = None,
) -> bool:
    """Make every collection of ``reader`` carry the points of ``histograms``.

    Call it once the reader is registered with its MeterProvider. ``histograms`` may grow
    later (instruments are made on first use).

    Args:
        reader: The provider's only reader.
        histograms: The histograms to add, in the scope ``scope``.
        resource: The provider's resource (a collection with nothing else recorded yet
            has none to copy).
        scope: The instrumentation scope's name (the meter's).
        more: Further metrics to add at a collection's time (nanoseconds), in the same
            scope: Temporal's (:class:`polyfleet.telemetry.temporal_metrics.CoreMetrics`).

    Returns:
        False when the reader cannot be extended (an SDK that registers readers otherwise):
        the caller should use the SDK's histograms then.

    """
    collect: Collect | None = getattr(reader, "_collect", None)
    if not callable(collect):
        return False

    def collect_with_histograms(*args: Any, **kwargs: Any) -> MetricsData | None:
        data = collect(*args, **kwargs)
        now = time.time_ns()
        added = [m for h in list(histograms) if (m := h.collect(now)) is not None]
        if more is not None:
            added.extend(more(now))
        if not added:
            return data
        return _with_metrics(data, added, resource, scope)

    reader._collect = collect_with_histograms  # type: ignore[assignment]
    return True


def _with_metrics(
    data: MetricsData | None, added: list[Metric], resource: Resource, scope: str
) -> MetricsData:
    """``data`` with ``added`` in the scope named ``scope`` of its first resource."""
    if data is None or not data.resource_metrics:
        scopes = [ScopeMetrics(InstrumentationScope(scope), added, "")]
        return MetricsData([ResourceMetrics(resource, scopes, "")])
    first, *others = data.resource_metrics
    scopes = list(first.scope_metrics)
    for index, scoped in enumerate(scopes):
        if scoped.scope.name == scope:
            scopes[index] = ScopeMetrics(scoped.scope, [*scoped.metrics, *added], scoped.schema_url)
            break
    else:
        scopes.append(ScopeMetrics(InstrumentationScope(scope), added, ""))
    return MetricsData([ResourceMetrics(first.resource, scopes, first.schema_url), *others])
