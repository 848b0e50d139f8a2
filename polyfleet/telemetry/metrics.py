"""Metrics: every metric polyfleet exports, defined once, and the one setup per process.

:data:`METRICS` is the table of every metric the orchestrator and the runner record, with its
kind, unit, description and label names; the code records through these objects only
(``EXECUTIONS_CREATED.add(1, kind="agent", name="assistant")``), so the table is what the
processes export and what docs/observability.md and deploy/observability/ may name.

:func:`setup_metrics` runs once per process (``python -m orchestrator``, ``python -m runner``):
an OpenTelemetry ``MeterProvider`` with a Prometheus reader served on ``/metrics``
(``POLYFLEET_METRICS_PORT``) and, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or its metrics variant)
is set, an OTLP exporter configured by the standard ``OTEL_*`` variables (one reader for both
where it can, :mod:`.metric_reader`). Temporal's own SDK metrics appear on the same
endpoints: where the process has one cumulative reader, the Temporal runtime aggregates them
and each collection reads them (:mod:`.temporal_metrics`); otherwise the runtime buffers
every update and they are forwarded into the same provider. :func:`temporal_metrics` is what
the process's runtime is given (:func:`polyfleet.temporal.process_runtime`). Without a setup
every record is a no-op costing one attribute check.

Gauges and counters are observed: :meth:`Metric.set` keeps the value and :meth:`Metric.add`
the running sum, and each collection (a scrape, an OTLP export) reads them, so setting a gauge
or adding to a counter costs a dictionary update, not a measurement through the SDK's
pipeline. Histograms, polyfleet's and Temporal's, are aggregated in the same way
(:mod:`.histograms`) where the process has one cumulative reader (``/metrics``, OTLP with its
defaults, or both through one reader); otherwise they are the SDK's own.

Label values must be bounded: kinds, phases, definition names, method names, never IDs.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Meter, NoOpMeter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric as PrometheusFamily
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_HISTOGRAM,
    BufferedMetricUpdate,
    MetricBuffer,
    MetricBufferDurationFormat,
    PrometheusConfig,
)

from polyfleet.config import ConfigError, MetricsSettings
from polyfleet.ports import free_port
from polyfleet.telemetry.histograms import (
    ObservedHistogram,
    add_to_collections,
    exemplar_filter,
    wants_observed,
)
from polyfleet.telemetry.metric_reader import PrometheusAndOtlpReader, shares_collections
from polyfleet.telemetry.temporal_metrics import CoreMetrics, is_duration

logger = logging.getLogger(__name__)

SCOPE = "polyfleet"
ORCHESTRATOR_SERVICE = "polyfleet-orchestrator"
RUNNER_SERVICE = "polyfleet-runner"
#: ``/metrics`` port of the orchestrator when POLYFLEET_METRICS_PORT is unset.
ORCHESTRATOR_METRICS_PORT = 9464
#: The port deployments give runners (POLYFLEET_METRICS_PORT): unset, a runner serves none,
#: since several runners often share one machine (``polyfleet dev``, tests).
RUNNER_METRICS_PORT = 9465
#: Buckets (seconds) of latencies measured in milliseconds to seconds.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Buckets (seconds) of things that take seconds to hours: executions, model calls, tasks.
SLOW_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
#: Seconds between two drains of Temporal's metric buffer (a scrape drains it too).
TEMPORAL_DRAIN_INTERVAL = 2.0
_TEMPORAL_BUFFER_SIZE = 100_000


class Kind(enum.Enum):
    """The OpenTelemetry instrument kind of a metric."""

    COUNTER = "counter"
    UP_DOWN_COUNTER = "updowncounter"
    HISTOGRAM = "histogram"
    GAUGE = "gauge"


@dataclass(frozen=True)
class Metric:
    """One metric: its OpenTelemetry name, instrument, unit, meaning and label names."""

    name: str
    kind: Kind
    unit: str
    description: str
    labels: tuple[str, ...] = ()
    #: The process that records it: "orchestrator" or "runner".
    process: str = "orchestrator"
    buckets: tuple[float, ...] = ()
    #: ``labels`` as a set, built once: every record checks its label names against it.
    _label_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_label_set", frozenset(self.labels))

    def add(self, amount: float = 1, **labels: str) -> None:
        """Add to a counter or up-down counter (no-op without a setup)."""
        instrument = _instrument(self)
        if instrument is not None:
            instrument.add(amount, self._attributes(labels))

    def record(self, value: float, **labels: str) -> None:
        """Record a histogram value (no-op without a setup)."""
        instrument = _instrument(self)
        if instrument is not None:
            instrument.record(value, self._attributes(labels))

    def set(self, value: float, **labels: str) -> None:
        """Set a gauge (no-op without a setup); collections read the last value set."""
        instrument = _instrument(self)
        if instrument is not None:
            instrument.set(value, self._attributes(labels))

    def _attributes(self, labels: dict[str, str]) -> dict[str, str]:
        if labels.keys() != self._label_set:
            raise ValueError(f"{self.name} takes labels {self.labels}, got {tuple(labels)}")
        return labels

    def prometheus_name(self) -> str:
        """The name Prometheus shows (what OpenTelemetry's Prometheus exporter makes of it).

        Dots become underscores, a unit adds its suffix (``s`` → ``_seconds``, ``By`` →
        ``_bytes``; ``{...}`` annotations add none) and counters end in ``_total``; a histogram's
        series add ``_bucket``, ``_sum`` and ``_count`` to this name.
        """
        base = self.name.replace(".", "_")
        suffix = _UNIT_SUFFIXES.get(self.unit, "")
        if suffix and not base.endswith(suffix):
            base += suffix
        if self.kind is Kind.COUNTER:
            base += "_total"
        return base

    def series(self) -> tuple[str, ...]:
        """Every series name Prometheus shows for this metric."""
        name = self.prometheus_name()
        if self.kind is Kind.HISTOGRAM:
            return (f"{name}_bucket", f"{name}_sum", f"{name}_count")
        return (name,)


_UNIT_SUFFIXES = {"s": "_seconds", "By": "_bytes", "1": "_ratio"}

_O = "orchestrator"
_R = "runner"

# --- orchestrator ---------------------------------------------------------------------------
EXECUTIONS_CREATED = Metric(
    "polyfleet.executions.created",
    Kind.COUNTER,
    "{execution}",
    "executions created (request IDs seen before do not count)",
    ("kind", "name"),
)
EXECUTIONS_ENDED = Metric(
    "polyfleet.executions.ended",
    Kind.COUNTER,
    "{execution}",
    "executions that reached a terminal phase",
    ("kind", "name", "phase"),
)
EXECUTION_DURATION = Metric(
    "polyfleet.execution.duration",
    Kind.HISTOGRAM,
    "s",
    "time from create to the terminal phase",
    ("kind", "name", "phase"),
    buckets=SLOW_BUCKETS,
)
EXECUTION_QUEUE_WAIT = Metric(
    "polyfleet.execution.queue_wait",
    Kind.HISTOGRAM,
    "s",
    "time from create to RUNNING (a runner took it)",
    ("kind", "name"),
    buckets=SLOW_BUCKETS,
)
EXECUTIONS_ACTIVE = Metric(
    "polyfleet.executions.active",
    Kind.GAUGE,
    "{execution}",
    "executions in each non-terminal phase now (sampled from the store's phase index)",
    ("kind", "phase"),
)
EXECUTIONS_STALE = Metric(
    "polyfleet.executions.stale",
    Kind.GAUGE,
    "{execution}",
    "RUNNING executions without any update for longer than POLYFLEET_STUCK_AFTER",
    ("kind",),
)
EXECUTION_REPORTS = Metric(
    "polyfleet.execution.reports",
    Kind.COUNTER,
    "{report}",
    "status reports merged into executions (source=runner|workflow|api): result=applied, "
    "duplicate (a report ID seen before) or rejected, with the gRPC code as reason",
    ("kind", "source", "result", "reason"),
)
STORE_COMMIT_DURATION = Metric(
    "polyfleet.store.commit.duration",
    Kind.HISTOGRAM,
    "s",
    "duration of an LMDB write transaction, durable commit included",
    buckets=FAST_BUCKETS,
)
STORE_SIZE = Metric(
    "polyfleet.store.size",
    Kind.GAUGE,
    "By",
    "bytes of the LMDB map in use, after the last commit",
)
WATCH_SUBSCRIBERS = Metric(
    "polyfleet.watch.subscribers",
    Kind.UP_DOWN_COUNTER,
    "{subscriber}",
    "open Watch streams",
)
RECONCILER_REPAIRS = Metric(
    "polyfleet.reconciler.repairs",
    Kind.COUNTER,
    "{repair}",
    "executions whose stored state the reconciler repaired, by outcome",
    ("outcome",),
)
API_REQUESTS = Metric(
    "polyfleet.api.requests",
    Kind.COUNTER,
    "{request}",
    "API calls by full method name and gRPC status code (refusals included)",
    ("method", "code"),
)
API_REQUEST_DURATION = Metric(
    "polyfleet.api.request.duration",
    Kind.HISTOGRAM,
    "s",
    "API call latency (a stream's: its whole life)",
    ("method", "code"),
    buckets=FAST_BUCKETS,
)

# --- runner ---------------------------------------------------------------------------------
ACTIVITIES_RUNNING = Metric(
    "polyfleet.activities.running",
    Kind.UP_DOWN_COUNTER,
    "{activity}",
    "activities the runner holds now",
    ("activity_type",),
    process=_R,
)
MODEL_CALLS = Metric(
    "polyfleet.model.calls",
    Kind.COUNTER,
    "{call}",
    "model calls; error = the exception type of a failed call, empty when it succeeded",
    ("provider", "model", "error"),
    process=_R,
)
MODEL_CALL_DURATION = Metric(
    "polyfleet.model.call.duration",
    Kind.HISTOGRAM,
    "s",
    "model call latency, streaming included",
    ("provider", "model"),
    process=_R,
    buckets=SLOW_BUCKETS,
)
MODEL_TOKENS = Metric(
    "polyfleet.model.tokens",
    Kind.COUNTER,
    "{token}",
    "tokens the provider reported, direction=input|output",
    ("provider", "model", "direction"),
    process=_R,
)
TOOL_CALLS = Metric(
    "polyfleet.tool.calls",
    Kind.COUNTER,
    "{call}",
    "tool calls; error = the exception type of a failed call, empty when it succeeded",
    ("tool", "error"),
    process=_R,
)
TOOL_CALL_DURATION = Metric(
    "polyfleet.tool.call.duration",
    Kind.HISTOGRAM,
    "s",
    "tool call latency",
    ("tool",),
    process=_R,
    buckets=SLOW_BUCKETS,
)
WORKFLOW_TASKS = Metric(
    "polyfleet.workflow.tasks",
    Kind.COUNTER,
    "{task}",
    "workflow DSL tasks finished, by task type (call, set, for, ...) and result",
    ("task_type", "result"),
    process=_R,
)
WORKFLOW_TASK_DURATION = Metric(
    "polyfleet.workflow.task.duration",
    Kind.HISTOGRAM,
    "s",
    "workflow DSL task duration",
    ("task_type", "result"),
    process=_R,
    buckets=SLOW_BUCKETS,
)
RUNNER_DRAINING = Metric(
    "polyfleet.runner.draining",
    Kind.GAUGE,
    "{runner}",
    "1 while the runner drains (stopped polling, finishing what it holds), else 0",
    process=_R,
)

METRICS: tuple[Metric, ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, Metric)
)
"""Every metric polyfleet records, in definition order."""

#: Temporal SDK metrics (from the Temporal runtime) that dashboards and alerts use,
#: as Prometheus shows them (histograms: add _bucket, _sum, _count); every worker of the
#: orchestrator and the runner exports them. Temporal's full list:
#: https://docs.temporal.io/references/sdk-metrics.
TEMPORAL_METRICS: tuple[str, ...] = (
    "temporal_request_total",
    "temporal_num_pollers",
    "temporal_worker_task_slots_available",
    "temporal_worker_task_slots_used",
    "temporal_activity_schedule_to_start_latency_seconds",
    "temporal_workflow_task_schedule_to_start_latency_seconds",
)


def exported_series() -> frozenset[str]:
    """Every Prometheus series name the processes export that dashboards may use."""
    names = {series for metric in METRICS for series in metric.series()}
    for name in TEMPORAL_METRICS:
        names.add(name)
        if name.endswith("_seconds"):
            names.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
    return frozenset(names)


@dataclass
class _Histograms:
    """Where a process's histograms go: the SDK's meter, or observed ones it collects."""

    meter: Meter
    #: The observed histograms made so far, which the reader's collections add; None: the
    #: SDK's histograms.
    observed: list[ObservedHistogram] | None = None
    exemplars: str = "trace_based"

    def create(self, name: str, unit: str, description: str, buckets: Sequence[float]) -> Any:
        """A histogram: ``record(value, attributes)``."""
        if self.observed is None:
            return self.meter.create_histogram(
                name, unit, description, explicit_bucket_boundaries_advisory=list(buckets) or None
            )
        histogram = ObservedHistogram(name, unit, description, buckets, self.exemplars)
        self.observed.append(histogram)
        return histogram


@dataclass
class _Active:
    meter: Meter
    histograms: _Histograms
    instruments: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_active: _Active | None = None


def _instrument(metric: Metric) -> Any:
    active = _active
    if active is None:
        return None
    instrument = active.instruments.get(metric.name)
    if instrument is None:
        with active.lock:
            instrument = active.instruments.get(metric.name)
            if instrument is None:
                instrument = _create(active, metric)
                active.instruments[metric.name] = instrument
    return instrument


def _create(active: _Active, metric: Metric) -> Any:
    name, unit, description = metric.name, metric.unit, metric.description
    if metric.kind is Kind.COUNTER or metric.kind is Kind.UP_DOWN_COUNTER:
        return _ObservedSum(active.meter, metric)
    if metric.kind is Kind.GAUGE:
        return _ObservedGauge(active.meter, name, unit, description)
    return active.histograms.create(name, unit, description, metric.buckets)


class _Observed:
    """Values kept here per attribute set, which the SDK observes at each collection."""

    def __init__(self) -> None:
        # attribute set -> [value, attributes]
        self._values: dict[frozenset[tuple[str, str]], list[Any]] = {}

    def _observe(self, _options: CallbackOptions) -> list[Observation]:
        # list() copies the values in one step under the GIL, so a set() or add() from another
        # thread (the store's commit thread, the Temporal drain) cannot change the dict
        # mid-iteration.
        return [Observation(value, attributes) for value, attributes in list(self._values.values())]


class _ObservedSum(_Observed):
    """A counter (or up-down counter) summed here per attribute set and observed at collection.

    The SDK's synchronous counter takes every add through its pipeline: a measurement, the
    exemplar filter and, inside a sampled span, an exemplar, the attribute set's key, a lock,
    once per reader. That was about 4 % of the orchestrator's CPU per execution
    (docs/benchmarks.md), a dozen adds each. The sum kept here is what the SDK's cumulative sum
    would be, so the asynchronous counter reporting it exports the same series with the same
    values (a delta exporter gets the differences, as the SDK computes them for any
    asynchronous counter, so a 0 for an attribute set with nothing added since its last export,
    where a synchronous counter leaves it out). What a counter's value no longer carries is an
    exemplar, the trace it was recorded in; histograms keep theirs.
    """

    def __init__(self, meter: Meter, metric: Metric) -> None:
        super().__init__()
        self._monotonic = metric.kind is Kind.COUNTER
        self._name = metric.name
        # Adds come from the event loop and from other threads (the store's writer).
        self._lock = threading.Lock()
        create = (
            meter.create_observable_counter
            if self._monotonic
            else meter.create_observable_up_down_counter
        )
        create(metric.name, [self._observe], metric.unit, metric.description)

    def add(self, amount: float, attributes: dict[str, str]) -> None:
        """Add ``amount`` to the sum of ``attributes`` (a dict not mutated later)."""
        if amount < 0 and self._monotonic:
            # What the SDK's synchronous counter does with a negative add too.
            logger.warning("%s: a counter cannot add %s; dropped", self._name, amount)
            return
        key = frozenset(attributes.items())
        with self._lock:
            entry = self._values.get(key)
            if entry is None:
                self._values[key] = [amount, attributes]
            else:
                entry[0] += amount


class _ObservedGauge(_Observed):
    """A gauge whose :meth:`set` keeps the value for the SDK to observe at collection.

    Some gauges are set far more often than anything collects them (the store's size, after
    every commit; Temporal's slot gauges, after every task): a synchronous gauge would push
    each value through the SDK's pipeline once per reader only for all but the last to be
    overwritten. Keeping the last value per attribute set and observing it exports the same
    series with the same values.
    """

    def __init__(self, meter: Meter, name: str, unit: str, description: str) -> None:
        super().__init__()
        meter.create_observable_gauge(name, [self._observe], unit, description)

    def set(self, value: float, attributes: dict[str, str]) -> None:
        """Keep ``value`` as the gauge's value for ``attributes`` (a dict not mutated later)."""
        self._values[frozenset(attributes.items())] = [value, attributes]


def enabled() -> bool:
    """Whether this process exports metrics (a setup is active)."""
    return _active is not None


class Timer:
    """Seconds since creation, for histograms: ``timer = Timer(); ...; timer.seconds()``."""

    __slots__ = ("_start",)

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def seconds(self) -> float:
        """Seconds elapsed."""
        return time.perf_counter() - self._start


class _TemporalForwarder:
    """Drains Temporal's metric buffer into OpenTelemetry instruments of the same names."""

    def __init__(self, meter: Meter, histograms: _Histograms) -> None:
        self.buffer = MetricBuffer(_TEMPORAL_BUFFER_SIZE, MetricBufferDurationFormat.SECONDS)
        self._meter = meter
        self._histograms = histograms
        self._instruments: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="temporal-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.drain()

    def _loop(self) -> None:
        while not self._stop.wait(TEMPORAL_DRAIN_INTERVAL):
            self.drain()

    def drain(self) -> None:
        """Record the buffer's updates since the last drain into the instruments.

        One drain's updates are folded first: a counter's deltas for one attribute set become
        one ``add`` of their sum and a gauge's values one ``set`` of the last, while every
        histogram value is recorded (a histogram's buckets need each one). Temporal updates
        its slot and poller gauges and request counters many times per task, and each record
        costs the SDK several microseconds per reader; folding exports the same values.
        """
        with self._lock:
            try:
                updates = self.buffer.retrieve_updates()
            except RuntimeError:  # no Temporal runtime uses the buffer yet
                return
            if updates:
                self._record(updates)

    def _record(self, updates: Sequence[BufferedMetricUpdate]) -> None:
        # Temporal hands the same attributes object to every update of one attribute set,
        # so they are converted once per object; the updates hold the objects, so ids stay
        # unique for the drain. Different objects with the same values share a fold key.
        converted: dict[int, tuple[dict[str, str], frozenset[tuple[str, str]]]] = {}
        folded: dict[tuple[str, frozenset[tuple[str, str]]], list[Any]] = {}
        for update in updates:
            metric, raw = update.metric, update.attributes
            attributes = converted.get(id(raw))
            if attributes is None:
                as_text = {key: str(value) for key, value in raw.items()}
                attributes = converted[id(raw)] = (as_text, frozenset(as_text.items()))
            instrument = self._instruments.get(metric.name)
            if instrument is None:
                instrument = self._instruments[metric.name] = self._create(metric)
            if metric.kind == BUFFERED_METRIC_KIND_HISTOGRAM:
                instrument.record(update.value, attributes[0])
                continue
            key = (metric.name, attributes[1])
            entry = folded.get(key)
            if entry is None:
                folded[key] = [instrument, metric.kind, update.value, attributes[0]]
            elif metric.kind == BUFFERED_METRIC_KIND_COUNTER:
                entry[2] += update.value
            else:  # a gauge: the last value wins
                entry[2] = update.value
        for instrument, kind, value, attributes in folded.values():
            if kind == BUFFERED_METRIC_KIND_COUNTER:
                instrument.add(value, attributes)
            else:
                instrument.set(value, attributes)

    def _create(self, metric: Any) -> Any:
        name, unit, description = metric.name, metric.unit or "", metric.description or ""
        if metric.kind == BUFFERED_METRIC_KIND_COUNTER:
            return self._meter.create_counter(name, unit, description)
        if metric.kind == BUFFERED_METRIC_KIND_HISTOGRAM:
            seconds = unit == "s" or is_duration(name)
            return self._histograms.create(
                name, "s" if seconds else unit, description, SLOW_BUCKETS if seconds else ()
            )
        return _ObservedGauge(self._meter, name, unit, description)


class _DrainBeforeScrape:
    """A Prometheus collector that yields nothing: it drains Temporal's buffer first."""

    def __init__(self, forwarder: _TemporalForwarder) -> None:
        self.forwarder = forwarder

    def collect(self) -> Iterator[PrometheusFamily]:
        self.forwarder.drain()
        return iter(())

    def describe(self) -> Iterable[PrometheusFamily]:
        return ()


class MetricsExport:
    """A process's metrics setup: the provider, the ``/metrics`` server, Temporal's metrics.

    Made by :func:`setup_metrics`; :meth:`close` flushes OTLP, stops the server and turns
    every record back into a no-op.
    """

    def __init__(
        self,
        provider: MeterProvider,
        readers: Sequence[MetricReader],
        forwarder: _TemporalForwarder | None,
        server: Any,
        port: int,
        core: CoreMetrics | None = None,
    ) -> None:
        self.provider = provider
        #: The provider's readers: a Prometheus one, an OTLP one, or one for both.
        self.readers = tuple(readers)
        self.port = port
        self._forwarder = forwarder
        self._server = server
        self._core = core

    @property
    def temporal_metrics(self) -> PrometheusConfig | MetricBuffer | None:
        """Where a Temporal runtime puts its SDK metrics; None: metrics are off.

        Its own aggregation served on loopback (:mod:`.temporal_metrics`), or a buffer
        drained into this setup's instruments.
        """
        if self._core is not None:
            return self._core.config
        return None if self._forwarder is None else self._forwarder.buffer

    def close(self) -> None:
        """Stop exporting; idempotent."""
        global _active
        if _export is self:
            _active = None
        self._core = None
        forwarder = self._forwarder
        if forwarder is not None:
            forwarder.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.provider.shutdown()


_export: MetricsExport | None = None


def setup_metrics(settings: MetricsSettings, service_name: str, default_port: int) -> MetricsExport:
    """Start exporting this process's metrics; once per process (until closed).

    Without a ``/metrics`` port and without an OTLP endpoint nothing would read them: metrics
    stay off (:func:`enabled` is False, every record a no-op) and so do Temporal's.

    Args:
        settings: ``POLYFLEET_METRICS_*``.
        service_name: ``service.name`` unless ``OTEL_SERVICE_NAME`` says otherwise.
        default_port: The ``/metrics`` port when ``POLYFLEET_METRICS_PORT`` is unset.

    Raises:
        ConfigError: The port cannot be bound (the message names the variable).
        RuntimeError: Metrics are already set up in this process.

    """
    global _active, _export
    if _active is not None:
        raise RuntimeError("metrics are already set up in this process")
    port = default_port if settings.port is None else settings.port
    registry = CollectorRegistry(auto_describe=False)
    readers: list[MetricReader] = []
    server = None
    bound = 0
    otlp: MetricExporter | None = None
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter,
        )

        # Endpoint, headers, TLS, interval: the SDK reads the standard OTEL_* variables.
        otlp = OTLPMetricExporter()
    exporting_otlp = otlp is not None
    if port:
        if otlp is not None and shares_collections(otlp):
            # One reader for both: every value is aggregated once, not once per reader.
            readers.append(PrometheusAndOtlpReader(otlp, registry))
            otlp = None
        else:
            readers.append(PrometheusMetricReader(registry=registry, scope_info_enabled=False))
    if otlp is not None:
        readers.append(PeriodicExportingMetricReader(otlp))
    resource = Resource.create({"service.name": service_name}).merge(
        OTELResourceDetector().detect()
    )
    if not readers:
        # Nothing would read what is recorded: recording stays a no-op (one check) and the
        # Temporal runtime gets no buffer, rather than both costing CPU for nothing.
        logger.info("metrics: off (no /metrics endpoint and no OTLP endpoint)")
        return MetricsExport(MeterProvider(resource=resource), readers, None, None, 0)
    provider = MeterProvider(resource=resource, metric_readers=readers)
    meter = provider.get_meter(SCOPE)
    histograms = _Histograms(meter, exemplars=exemplar_filter())
    # One reader collecting cumulative explicit-bucket histograms (all but an OTLP exporter
    # asked for delta or exponential buckets): histograms are aggregated here.
    # OTEL_SDK_DISABLED makes the meter a no-op: then histograms record nothing either.
    # Temporal's metrics are then added to the same collections, aggregated by its runtime.
    core: CoreMetrics | None = None
    if len(readers) == 1 and wants_observed(readers[0]) and not isinstance(meter, NoOpMeter):
        observed: list[ObservedHistogram] = []
        core = CoreMetrics(free_port())
        if add_to_collections(readers[0], observed, resource, SCOPE, core.collect):
            histograms.observed = observed
        else:
            core = None
            logger.warning(
                "metrics: this OpenTelemetry SDK's reader cannot be extended; "
                "histograms go through the SDK"
            )
    forwarder: _TemporalForwarder | None = None
    if core is None:
        forwarder = _TemporalForwarder(meter, histograms)
        # Registered first: the registry collects in registration order, so a scrape
        # drains Temporal's buffer before it reads the instruments.
        registry.register(_DrainBeforeScrape(forwarder))
    if port:
        try:
            server, _ = start_http_server(port, settings.address, registry=registry)
        except OSError as exc:
            provider.shutdown()
            raise ConfigError(
                f"POLYFLEET_METRICS_PORT={port}: cannot serve /metrics on "
                f"{settings.address}:{port}: {exc.strerror or exc}"
            ) from None
        bound = server.server_address[1]
    if forwarder is not None:
        forwarder.start()
    _active = _Active(meter, histograms)
    _export = MetricsExport(provider, readers, forwarder, server, bound, core)
    logger.info(
        "metrics: %s%s",
        f"/metrics on {settings.address}:{bound}" if bound else "no /metrics endpoint",
        ", OTLP export on" if exporting_otlp else "",
    )
    return _export


def temporal_metrics() -> PrometheusConfig | MetricBuffer | None:
    """Where this process's Temporal runtime should put its metrics; None: no metrics."""
    export = _export
    return export.temporal_metrics if export is not None and _active is not None else None


def table() -> Sequence[Metric]:
    """Every metric polyfleet defines (:data:`METRICS`)."""
    return METRICS
