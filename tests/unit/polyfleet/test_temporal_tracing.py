"""The workflow side of temporalio's tracing without the zero-length markers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry import context, trace
from opentelemetry.propagate import get_global_textmap
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from temporalio.api.common.v1 import Payload
from temporalio.contrib.opentelemetry import TracingWorkflowInboundInterceptor
from temporalio.converter import PayloadConverter

from polyfleet.telemetry.temporal_tracing import _WorkflowTracing

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7


@dataclass
class _Outbound:
    headers: dict[str, Payload] = field(default_factory=dict)


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The spans temporalio's workflow side was asked to make (name, exception)."""
    calls: list[tuple[str, Any]] = []

    def record(self: object, span_name: str, **kwargs: Any) -> None:
        calls.append((span_name, kwargs.get("exception")))

    monkeypatch.setattr(TracingWorkflowInboundInterceptor, "_completed_span", record)
    return calls


def _interceptor() -> _WorkflowTracing:
    # Outside a workflow: only the attributes the marker path reads (set by temporalio's
    # __init__, which needs a running workflow).
    interceptor = object.__new__(_WorkflowTracing)
    interceptor.header_key = "_tracer-data"
    interceptor.text_map_propagator = get_global_textmap()
    interceptor.payload_converter = PayloadConverter.default
    interceptor._written = None
    return interceptor


def _traceparent(headers: dict[str, Payload]) -> str:
    carrier = PayloadConverter.default.from_payloads([headers["_tracer-data"]])[0]
    return str(carrier["traceparent"])


def test_a_scheduled_activity_gets_the_workflow_context_but_no_span(
    made: list[tuple[str, Any]],
) -> None:
    interceptor = _interceptor()
    outbound = _Outbound(headers={"other": Payload(data=b"kept")})
    parent = SpanContext(TRACE_ID, SPAN_ID, is_remote=True, trace_flags=TraceFlags(1))
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        interceptor._completed_span("StartActivity:ExecuteGraphton", add_to_outbound=outbound)
    finally:
        context.detach(token)

    assert made == []
    assert outbound.headers["other"].data == b"kept"
    assert _traceparent(outbound.headers) == f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"


def test_one_context_is_written_once_for_all_the_activities_it_schedules(
    made: list[tuple[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    interceptor = _interceptor()
    injected: list[dict[str, str]] = []
    inject = interceptor.text_map_propagator.inject

    def counted(carrier: dict[str, str], *args: Any, **kwargs: Any) -> None:
        injected.append(carrier)
        inject(carrier, *args, **kwargs)

    monkeypatch.setattr(interceptor.text_map_propagator, "inject", counted)
    first = SpanContext(TRACE_ID, SPAN_ID, is_remote=True, trace_flags=TraceFlags(1))
    second = SpanContext(TRACE_ID, SPAN_ID + 1, is_remote=True, trace_flags=TraceFlags(1))
    scheduled: list[_Outbound] = []
    for parent, activities in ((first, 3), (second, 1)):
        span = NonRecordingSpan(parent)
        for _ in range(activities):
            token = context.attach(trace.set_span_in_context(span))
            try:
                scheduled.append(outbound := _Outbound())
                interceptor._completed_span("StartActivity:EnsureThread", add_to_outbound=outbound)
            finally:
                context.detach(token)

    # The three activities of the first context share one write; the second context's own.
    # (Each attach makes a new Context object: they are equal, not identical.)
    assert len(injected) == 2
    assert [_traceparent(outbound.headers)[36:52] for outbound in scheduled] == [
        f"{SPAN_ID:016x}"
    ] * 3 + [f"{SPAN_ID + 1:016x}"]


def test_without_a_trace_a_scheduled_activity_carries_nothing_extra(
    made: list[tuple[str, Any]],
) -> None:
    outbound = _Outbound()
    _interceptor()._completed_span("StartActivity:EnsureThread", add_to_outbound=outbound)

    assert made == [] and outbound.headers == {}


def test_completion_is_a_span_only_when_the_workflow_failed(
    made: list[tuple[str, Any]],
) -> None:
    interceptor = _interceptor()
    failure = RuntimeError("boom")

    interceptor._completed_span("CompleteWorkflow:AgentExecutionWorkflow")
    interceptor._completed_span("CompleteWorkflow:AgentExecutionWorkflow", exception=failure)
    interceptor._completed_span("RunWorkflow:AgentExecutionWorkflow")

    assert made == [
        ("CompleteWorkflow:AgentExecutionWorkflow", failure),
        ("RunWorkflow:AgentExecutionWorkflow", None),
    ]
