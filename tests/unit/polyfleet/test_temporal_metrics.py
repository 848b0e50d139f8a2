"""Temporal's metrics as its runtime serves them, turned into OpenTelemetry metrics."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
)

from polyfleet.ports import free_port
from polyfleet.telemetry.temporal_metrics import CoreMetrics, parse

# As the runtime writes it (durations in seconds, no unit suffixes).
TEXT = """\
# HELP temporal_request Count of client request successes by rpc name
# TYPE temporal_request counter
temporal_request{operation="StartWorkflowExecution",service_name="temporal-core-sdk"} 7
# HELP temporal_local_activity_total Count of local activities executed
# TYPE temporal_local_activity_total counter
temporal_local_activity_total{activity_type="UpdateStatus",task_queue="q"} 3
# HELP temporal_worker_task_slots_available Current number of worker slots available
# TYPE temporal_worker_task_slots_available gauge
temporal_worker_task_slots_available{task_queue="q",worker_type="ActivityWorker"} 98
temporal_worker_task_slots_available{task_queue="q",worker_type="WorkflowWorker"} 100
# HELP temporal_request_latency Histogram of client request latencies
# TYPE temporal_request_latency histogram
temporal_request_latency_bucket{operation="PollWorkflowTaskQueue",le="0.05"} 2
temporal_request_latency_bucket{operation="PollWorkflowTaskQueue",le="0.1"} 5
temporal_request_latency_bucket{operation="PollWorkflowTaskQueue",le="1"} 5
temporal_request_latency_bucket{operation="PollWorkflowTaskQueue",le="+Inf"} 6
temporal_request_latency_sum{operation="PollWorkflowTaskQueue"} 2.75
temporal_request_latency_count{operation="PollWorkflowTaskQueue"} 6
"""


def _by_name(core: CoreMetrics, text: str, now: int) -> dict[str, Metric]:
    return {metric.name: metric for metric in core.convert(text, now)}


def test_each_family_becomes_the_metric_of_its_kind_with_name_labels_and_unit() -> None:
    metrics = _by_name(CoreMetrics(free_port()), TEXT, 1_000)

    request = metrics["temporal_request"]
    assert isinstance(request.data, Sum)
    assert request.data.is_monotonic
    assert request.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    (point,) = request.data.data_points
    assert isinstance(point, NumberDataPoint)
    assert point.value == 7
    assert point.attributes == {
        "operation": "StartWorkflowExecution",
        "service_name": "temporal-core-sdk",
    }
    assert request.description == "Count of client request successes by rpc name"
    assert request.unit == ""

    # A counter named with _total keeps it (the parser drops it from the family's name).
    local = metrics["temporal_local_activity_total"]
    assert isinstance(local.data, Sum)
    assert [p.value for p in local.data.data_points] == [3]

    slots = metrics["temporal_worker_task_slots_available"]
    assert isinstance(slots.data, Gauge)
    assert {(p.attributes or {})["worker_type"]: p.value for p in slots.data.data_points} == {
        "ActivityWorker": 98,
        "WorkflowWorker": 100,
    }


def test_a_histogram_gets_per_bucket_counts_its_bounds_sum_and_count_in_seconds() -> None:
    latency = _by_name(CoreMetrics(free_port()), TEXT, 1_000)["temporal_request_latency"]

    assert latency.unit == "s"
    assert isinstance(latency.data, Histogram)
    (point,) = latency.data.data_points
    assert isinstance(point, HistogramDataPoint)
    assert point.attributes == {"operation": "PollWorkflowTaskQueue"}
    assert point.explicit_bounds == (0.05, 0.1, 1.0)
    # Cumulative 2, 5, 5, 6 -> 2, 3, 0 and 1 above the last bound.
    assert point.bucket_counts == (2, 3, 0, 1)
    assert (point.count, point.sum) == (6, 2.75)
    assert point.min is None and point.max is None  # not in the text


def test_a_series_keeps_the_start_of_its_first_collection() -> None:
    core = CoreMetrics(free_port())
    first = _by_name(core, TEXT, 1_000)["temporal_request"]
    later = _by_name(core, TEXT.replace("} 7", "} 9"), 5_000)["temporal_request"]

    assert isinstance(later.data, Sum)
    (point,) = later.data.data_points
    assert (point.start_time_unix_nano, point.time_unix_nano, point.value) == (1_000, 5_000, 9)
    assert first.data.data_points[0].start_time_unix_nano == 1_000


@pytest.fixture
def served() -> Iterator[CoreMetrics]:
    """A CoreMetrics whose port serves :data:`TEXT`, as a runtime would."""
    port = free_port()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            payload = TEXT.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield CoreMetrics(port)
    finally:
        server.shutdown()
        server.server_close()


def test_a_collection_reads_the_runtime_endpoint(
    served: CoreMetrics,
) -> None:
    core = served
    assert "127.0.0.1" in core.config.bind_address and core.config.durations_as_seconds

    names = {metric.name for metric in core.collect(1_000)}

    assert "temporal_request_latency" in names and "temporal_request" in names


def test_before_a_runtime_serves_a_collection_has_no_temporal_metrics() -> None:
    # Nothing listens on the port until the process's first Temporal client connects.
    assert CoreMetrics(free_port()).collect(1_000) == []


def test_the_parser_reads_escapes_samples_without_labels_and_skips_undeclared_ones() -> None:
    text = (
        "# HELP temporal_x A help with a \\\\ backslash\\nand a new line\n"
        "# TYPE temporal_x gauge\n"
        'temporal_x{task_queue="a \\"quoted\\" \\\\ queue\\n"} 1.5\n'
        "temporal_x 2\n"
        "temporal_undeclared 3\n"
    )
    (family,) = parse(text)

    assert (family.name, family.type) == ("temporal_x", "gauge")
    assert family.help == "A help with a \\ backslash\nand a new line"
    assert family.samples == [
        ("temporal_x", {"task_queue": 'a "quoted" \\ queue\n'}, 1.5),
        ("temporal_x", {}, 2.0),
    ]
