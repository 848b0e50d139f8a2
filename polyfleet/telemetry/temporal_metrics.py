"""Temporal's SDK metrics, aggregated by Temporal's core and read at each collection.

The Temporal runtime can hand its metrics to Python one update at a time (a
``MetricBuffer``, drained into OpenTelemetry instruments by :mod:`.metrics`), or aggregate
them itself and serve them in Prometheus' text format. An agent execution makes about 66
updates in the orchestrator (slot and poller gauges, request counters, 18 latencies) and
32 in the runner; drained, they cost the two processes' Python 0.28 ms of CPU per execution
(thread time of the drains). In the observability benchmark, metrics alone measured +1.8 to
+3.3 % with Temporal's own aggregation against +2.5 to +4.3 % with the buffer
(docs/benchmarks.md, "This stop").

:class:`CoreMetrics` configures the second: the runtime serves its metrics on a loopback
port only this process reads, and every collection of the process's metric reader (a
scrape of ``/metrics``, an OTLP export) reads that text and turns each family into an
OpenTelemetry metric: a counter into a cumulative monotonic sum, a gauge into a gauge, a
histogram into cumulative explicit buckets (Temporal's own bounds, in seconds). So
Temporal's metrics keep their names, labels and units on both endpoints, at the cost of
one loopback read per collection instead of Python work per update.

The text carries no histogram minimum or maximum: those points have none (OTLP leaves the
fields unset; Prometheus never shows them).
"""

from __future__ import annotations

import logging
import math
import re
import urllib.request
from dataclasses import dataclass, field

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
)
from temporalio.runtime import PrometheusConfig

logger = logging.getLogger(__name__)

# A collection waits at most this long for the runtime's text (a loopback read).
READ_TIMEOUT = 2.0
# A series: the metric's name and its labels.
_Series = tuple[str, frozenset[tuple[str, str]]]


def is_duration(name: str) -> bool:
    """Whether Temporal's metric ``name`` is a duration: its durations are named *_latency.

    Both paths report them in seconds (``durations_as_seconds``, the buffer's ``SECONDS``).
    """
    return name.endswith("_latency")


class CoreMetrics:
    """Temporal core's metrics, served by its runtime on ``127.0.0.1:port``.

    Args:
        port: A free loopback port for the runtime's Prometheus endpoint.

    """

    def __init__(self, port: int) -> None:
        #: What the process's Temporal runtime is given (``TelemetryConfig(metrics=...)``).
        self.config = PrometheusConfig(bind_address=f"127.0.0.1:{port}", durations_as_seconds=True)
        self._url = f"http://127.0.0.1:{port}/metrics"
        # When each series was first read: the start of its cumulative points.
        self._started: dict[_Series, int] = {}
        self._unreadable = False

    def read(self) -> str | None:
        """The runtime's text; None before a runtime serves it (no client connected yet)."""
        try:
            with urllib.request.urlopen(self._url, timeout=READ_TIMEOUT) as response:
                text: str = response.read().decode()
        except OSError as exc:
            if not self._unreadable:
                # Before the first connect this is expected; logged once either way.
                logger.debug("Temporal's metrics are not readable yet: %s", exc)
                self._unreadable = True
            return None
        self._unreadable = False
        return text

    def collect(self, now: int) -> list[Metric]:
        """Temporal's metrics as OpenTelemetry metrics at ``now`` (nanoseconds)."""
        text = self.read()
        return [] if text is None else self.convert(text, now)

    def convert(self, text: str, now: int) -> list[Metric]:
        """The families of Prometheus ``text`` as OpenTelemetry metrics at ``now``."""
        converted: list[Metric] = []
        for family in parse(text):
            if family.type == "counter":
                data: Sum | Gauge | Histogram = Sum(
                    self._numbers(family, now), AggregationTemporality.CUMULATIVE, is_monotonic=True
                )
            elif family.type == "gauge":
                data = Gauge(self._numbers(family, now))
            elif family.type == "histogram":
                data = Histogram(
                    self._histogram_points(family, now), AggregationTemporality.CUMULATIVE
                )
            else:  # the runtime writes no other type
                continue
            converted.append(
                Metric(
                    name=family.name,
                    description=family.help,
                    unit="s" if is_duration(family.name) else "",
                    data=data,
                )
            )
        return converted

    def _start(self, series: _Series, now: int) -> int:
        return self._started.setdefault(series, now)

    def _numbers(self, family: Family, now: int) -> list[NumberDataPoint]:
        return [
            NumberDataPoint(
                attributes=labels,
                start_time_unix_nano=self._start((family.name, frozenset(labels.items())), now),
                time_unix_nano=now,
                value=value,
            )
            for _, labels, value in family.samples
        ]

    def _histogram_points(self, family: Family, now: int) -> list[HistogramDataPoint]:
        # Prometheus writes cumulative bucket counts (le) and a sum and count per series.
        name = family.name
        buckets: dict[frozenset[tuple[str, str]], list[tuple[float, float]]] = {}
        sums: dict[frozenset[tuple[str, str]], float] = {}
        counts: dict[frozenset[tuple[str, str]], float] = {}
        attributes: dict[frozenset[tuple[str, str]], dict[str, str]] = {}
        for sample, all_labels, value in family.samples:
            labels = {k: v for k, v in all_labels.items() if k != "le"}
            key = frozenset(labels.items())
            attributes.setdefault(key, labels)
            if sample == name + "_bucket":
                buckets.setdefault(key, []).append((float(all_labels["le"]), value))
            elif sample == name + "_sum":
                sums[key] = value
            elif sample == name + "_count":
                counts[key] = value
        points = []
        for key, cumulative in buckets.items():
            cumulative.sort()
            bounds = tuple(le for le, _ in cumulative if le != math.inf)
            per_bucket = []
            below = 0.0
            for _, count in cumulative:
                per_bucket.append(int(count - below))
                below = count
            if cumulative[-1][0] != math.inf:  # no +Inf bucket: the count says it
                per_bucket.append(int(counts.get(key, below) - below))
            points.append(
                HistogramDataPoint(
                    attributes=attributes[key],
                    start_time_unix_nano=self._start((name, key), now),
                    time_unix_nano=now,
                    count=int(counts.get(key, below)),
                    sum=sums.get(key, 0.0),
                    bucket_counts=tuple(per_bucket),
                    explicit_bounds=bounds,
                    # Not in the text: unset in OTLP, never shown by Prometheus.
                    min=None,  # type: ignore[arg-type]
                    max=None,  # type: ignore[arg-type]
                    exemplars=[],
                )
            )
        return points


@dataclass
class Family:
    """One metric of the text: its name (as its ``# TYPE`` line gives it), type, help."""

    name: str
    type: str
    help: str = ""
    #: (sample name, labels, value), in the text's order.
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


# A label pair; the value with Prometheus' escapes (backslash, quote, newline) still in it.
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")
_ESCAPED = {"n": "\n"}
# The samples a histogram family writes besides its own name.
_HISTOGRAM_SAMPLES = ("_bucket", "_sum", "_count")


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return _ESCAPE.sub(lambda match: _ESCAPED.get(match[1], match[1]), value)


def parse(text: str) -> list[Family]:
    """The families of Prometheus' text format, as Temporal's runtime writes it.

    prometheus_client's parser takes about 35 µs a line (8 ms for a runtime's 250 lines,
    at every collection); the runtime writes one sample a line, no timestamps and no
    exemplars, which this reads at a fraction of that. A sample belongs to the family its
    ``# TYPE`` line declares (a histogram's ``_bucket``, ``_sum`` and ``_count`` to the
    histogram); a sample of no declared family is skipped.
    """
    families: dict[str, Family] = {}
    for line in text.splitlines():
        if not line:
            continue
        if line[0] == "#":
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("TYPE", "HELP"):
                family = families.get(parts[2])
                if family is None:
                    family = families[parts[2]] = Family(parts[2], "untyped")
                rest = parts[3].strip() if len(parts) > 3 else ""
                if parts[1] == "TYPE":
                    family.type = rest
                else:
                    family.help = _unescape(rest)
            continue
        brace = line.find("{")
        if brace >= 0:
            close = line.rfind("}")
            name = line[:brace]
            labels = {key: _unescape(value) for key, value in _LABEL.findall(line, brace, close)}
            fields = line[close + 1 :].split()
        else:
            name, *fields = line.split()
            labels = {}
        if not fields:
            continue
        owner = families.get(name)
        if owner is None:
            for suffix in _HISTOGRAM_SAMPLES:
                if name.endswith(suffix):
                    owner = families.get(name[: -len(suffix)])
                    break
        if owner is not None:
            owner.samples.append((name, labels, float(fields[0])))
    return list(families.values())


__all__ = ["READ_TIMEOUT", "CoreMetrics", "Family", "is_duration", "parse"]
