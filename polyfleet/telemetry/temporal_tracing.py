"""Temporalio's tracing interceptor without its zero-length scheduling markers.

temporalio's ``TracingInterceptor`` makes, inside a workflow, a span for every activity it
schedules (``StartActivity:…``) and one when the workflow completes
(``CompleteWorkflow:…``). Workflow code cannot keep a span open across a replay, so both are
started and ended at once, through an extern call out of the sandbox: markers with no
duration, saying when Temporal was asked to schedule an activity and when the workflow
returned, which the workflow's history records as well. Every span costs its process about
0.3 to 0.5 ms of CPU from creation to export (docs/benchmarks.md, "Observability on vs off"),
and these were 4 of an agent execution's 16 spans.

:class:`TemporalTracing` keeps everything else of temporalio's interceptor: the
``StartWorkflow`` span of the client, ``RunWorkflow`` of the workflow, ``RunActivity`` of
every activity (a child of the workflow's context, which the headers of the scheduling
command still carry), and ``CompleteWorkflow`` when the workflow fails, with the error.

The header the scheduling commands carry is written once per context instead of once per
activity. In the benchmark's raw workflow worker (bench/raw_temporal.py, thread CPU):
tracing's share of the workflow activations fell from 0.36 to 0.29 ms per execution (810
executions) with the context compared by identity, and the header writes from 0.17 to 0.07
ms per execution (610) once compared by value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from temporalio.contrib.opentelemetry import TracingInterceptor, TracingWorkflowInboundInterceptor

if TYPE_CHECKING:
    from temporalio.api.common.v1 import Payload
    from temporalio.worker import WorkflowInboundInterceptor, WorkflowInterceptorClassInput

# Markers skipped; CompleteWorkflow is kept for a workflow that failed.
_SCHEDULED = "StartActivity:"
_COMPLETED = "CompleteWorkflow:"


class _WorkflowTracing(TracingWorkflowInboundInterceptor):
    """The workflow side: no span for a scheduled activity or a successful completion."""

    def __init__(self, next: WorkflowInboundInterceptor) -> None:
        """Initialize; no header written yet."""
        super().__init__(next)
        # The last context written into a header, with the header's payload (None: the
        # context carried nothing to write).
        self._written: tuple[otel_context.Context, Payload | None] | None = None

    def _context_to_headers(self, headers: Mapping[str, Payload]) -> Mapping[str, Payload]:
        """``headers`` with the current context's: written once per context, not per activity.

        An agent execution's workflow schedules three activities from one context, and each
        header costs a propagator ``inject`` and a payload conversion, run inside the sandbox
        (where every ``isinstance`` goes through its wrappers). Equal contexts write the same
        header; the workflow's is an equal but new object in each activation, so they are
        compared by value (a few keys). The command copies the payload.
        """
        current = otel_context.get_current()
        written = self._written
        if written is None or written[0] != current:
            carrier: dict[str, str] = {}
            self.text_map_propagator.inject(carrier)
            payload = self.payload_converter.to_payloads([carrier])[0] if carrier else None
            written = self._written = (current, payload)
        if written[1] is None:
            return headers
        return {**headers, self.header_key: written[1]}

    def _completed_span(
        self,
        span_name: str,
        *,
        exception: Exception | None = None,
        **kwargs: object,
    ) -> None:
        # temporalio's only hook for which spans a workflow makes is this method (the
        # interceptor documents subclassing for its customisation); the test of the trace
        # tree (tests/integration/test_tracing.py) fails if a temporalio update changes it.
        if span_name.startswith(_SCHEDULED):
            outbound = kwargs.get("add_to_outbound")
            if outbound is not None:
                # The activity's RunActivity span becomes a child of the workflow's context.
                outbound.headers = self._context_to_headers(outbound.headers)  # type: ignore[attr-defined]
            return
        if span_name.startswith(_COMPLETED) and exception is None:
            return
        super()._completed_span(span_name, exception=exception, **kwargs)  # type: ignore[arg-type]


class TemporalTracing(TracingInterceptor):
    """temporalio's ``TracingInterceptor`` whose workflows skip the zero-length markers."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[TracingWorkflowInboundInterceptor]:
        """Register temporalio's span extern, then use the marker-free workflow side."""
        super().workflow_interceptor_class(input)
        return _WorkflowTracing


__all__ = ["TemporalTracing"]
