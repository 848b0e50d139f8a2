"""A real OTLP/gRPC receiver on 127.0.0.1, for the tests and benchmarks that export to one.

``with OtlpReceiver().serving() as endpoint:`` serves OTLP traces and metrics on a free port
(``endpoint`` is the URL for ``OTEL_EXPORTER_OTLP_ENDPOINT``). It counts the spans and the
metric exports it is sent and, unless made with ``keep=False`` (a benchmark's long run), keeps
every request for the test to read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

TraceRequest = trace_service_pb2.ExportTraceServiceRequest
MetricsRequest = metrics_service_pb2.ExportMetricsServiceRequest


class OtlpReceiver(
    trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer
):
    """Receives OTLP traces and metrics; see the module doc.

    Args:
        keep: Keep every request (:meth:`trace_requests`, :meth:`metric_requests`); False
            only counts them.

    """

    def __init__(self, *, keep: bool = True) -> None:
        self.spans = 0
        self.metric_exports = 0
        self._keep = keep
        self._traces: list[TraceRequest] = []
        self._metrics: list[MetricsRequest] = []
        self._lock = threading.Lock()

    def Export(  # noqa: N802 - both services name their one method Export
        self, request: TraceRequest | MetricsRequest, context: grpc.ServicerContext
    ) -> (
        trace_service_pb2.ExportTraceServiceResponse
        | metrics_service_pb2.ExportMetricsServiceResponse
    ):
        """Count (and keep) the request; answer success."""
        if isinstance(request, TraceRequest):
            count = sum(
                len(scope.spans)
                for resource in request.resource_spans
                for scope in resource.scope_spans
            )
            with self._lock:
                self.spans += count
                if self._keep:
                    self._traces.append(request)
            return trace_service_pb2.ExportTraceServiceResponse()
        with self._lock:
            self.metric_exports += 1
            if self._keep:
                self._metrics.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def trace_requests(self) -> list[TraceRequest]:
        """The trace exports received so far, in order."""
        with self._lock:
            return list(self._traces)

    def metric_requests(self) -> list[MetricsRequest]:
        """The metric exports received so far, in order."""
        with self._lock:
            return list(self._metrics)

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Serve on a free 127.0.0.1 port; yields the endpoint URL."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        # The generated registration functions carry no annotations.
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop(None).wait()
