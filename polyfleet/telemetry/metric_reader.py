"""One metric reader for both `/metrics` and OTLP, so each value is aggregated once.

The OpenTelemetry SDK aggregates every recorded value once per reader of its provider: with
the Prometheus reader and a periodic OTLP reader side by side, each measurement (and its
exemplar) costs twice. :class:`PrometheusAndOtlpReader` is the Prometheus reader that also
sends a collection to an OTLP exporter every ``OTEL_METRIC_EXPORT_INTERVAL`` milliseconds
(default 60,000; ``OTEL_METRIC_EXPORT_TIMEOUT``, default 30,000, bounds each export), as the
SDK's periodic reader would. A scrape and an export then read the same cumulative sums.

That holds only while the exporter wants what Prometheus shows: cumulative temporality and
the default aggregations. When ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` or
``OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`` asks otherwise,
:func:`shares_collections` says no and the two readers stay apart.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import DefaultAggregation, ExplicitBucketHistogramAggregation
from prometheus_client import CollectorRegistry

logger = logging.getLogger(__name__)

_DEFAULT_INTERVAL_MILLIS = 60_000.0
_DEFAULT_TIMEOUT_MILLIS = 30_000.0


def shares_collections(exporter: MetricExporter) -> bool:
    """Whether ``exporter`` can be sent the collections Prometheus reads.

    Args:
        exporter: The OTLP metric exporter, configured from the environment.

    Returns:
        True when it prefers cumulative temporality and the default aggregations for every
        instrument (what :class:`PrometheusMetricReader` collects).

    """
    temporalities = (exporter._preferred_temporality or {}).values()
    aggregations = (exporter._preferred_aggregation or {}).values()
    return all(t is AggregationTemporality.CUMULATIVE for t in temporalities) and all(
        is_default_aggregation(a) for a in aggregations
    )


def is_default_aggregation(aggregation: object) -> bool:
    """Whether ``aggregation`` is the one the SDK uses when none is asked for.

    Its default, or explicit buckets without boundaries of their own (the default buckets).
    """
    return type(aggregation) is DefaultAggregation or (
        type(aggregation) is ExplicitBucketHistogramAggregation and aggregation._boundaries is None
    )


def _millis(variable: str, default: float) -> float:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        # The SDK's periodic reader warns and keeps its default too.
        logger.warning(
            "%s=%s is not a positive number of milliseconds; using %g", variable, raw, default
        )
        return default
    return value


class PrometheusAndOtlpReader(PrometheusMetricReader):
    """The Prometheus reader, also exporting its collections over OTLP periodically.

    Args:
        exporter: Where the periodic collections go (OTLP).
        registry: The Prometheus registry `/metrics` serves.
        interval_millis: Between two exports; None: ``OTEL_METRIC_EXPORT_INTERVAL``.
        timeout_millis: Longest export; None: ``OTEL_METRIC_EXPORT_TIMEOUT``.

    """

    def __init__(
        self,
        exporter: MetricExporter,
        registry: CollectorRegistry,
        *,
        interval_millis: float | None = None,
        timeout_millis: float | None = None,
    ) -> None:
        super().__init__(registry=registry, scope_info_enabled=False)
        self._exporter = exporter
        self._interval = (
            _millis("OTEL_METRIC_EXPORT_INTERVAL", _DEFAULT_INTERVAL_MILLIS)
            if interval_millis is None
            else interval_millis
        ) / 1000
        self._timeout_millis = (
            _millis("OTEL_METRIC_EXPORT_TIMEOUT", _DEFAULT_TIMEOUT_MILLIS)
            if timeout_millis is None
            else timeout_millis
        )
        # Set on the thread that collects for OTLP while it does: a scrape on another
        # thread still goes to Prometheus.
        self._exporting = threading.local()
        # The exporter is never called concurrently (the OpenTelemetry specification).
        self._export_lock = threading.Lock()
        self._stopped = threading.Event()
        self._shut = False
        self._thread = threading.Thread(
            target=self._tick, name="polyfleet-otlp-metrics", daemon=True
        )
        self._thread.start()

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        if getattr(self._exporting, "active", False):
            # No spans or metrics of the export's own gRPC call (as the SDK's reader does).
            token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
            try:
                self._exporter.export(metrics_data, timeout_millis=timeout_millis)
            finally:
                detach(token)
        else:
            super()._receive_metrics(metrics_data, timeout_millis, **kwargs)

    def export_now(self) -> None:
        """Collect and send one export to the OTLP exporter (the ticker does it periodically)."""
        with self._export_lock:
            self._exporting.active = True
            try:
                self.collect(timeout_millis=self._timeout_millis)
            except Exception:
                logger.exception("cannot export metrics over OTLP")
            finally:
                self._exporting.active = False

    def _tick(self) -> None:
        while not self._stopped.wait(self._interval):
            self.export_now()

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Export now, then flush the exporter."""
        self.export_now()
        return bool(self._exporter.force_flush(timeout_millis=timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Stop the ticker, export once more, and shut the exporter down; idempotent."""
        if self._shut:
            return
        self._shut = True
        self._stopped.set()
        self._thread.join(timeout=timeout_millis / 1000)
        self.export_now()
        self._exporter.shutdown(timeout_millis=timeout_millis)
        super().shutdown(timeout_millis=timeout_millis, **kwargs)
