"""Tracing helpers: when tracing is on, W3C context in gRPC metadata, the trace link."""

from __future__ import annotations

import warnings

import pytest
from opentelemetry import context, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from polyfleet.cli.views import describe_execution, describe_workflow_execution
from polyfleet.telemetry import tracing
from polyfleet.v1 import agent_execution_pb2, workflow_execution_pb2
from tests.helpers import install_tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_tracing_is_on_only_with_an_otlp_endpoint() -> None:
    assert not tracing.exporting({})
    assert not tracing.exporting({"OTEL_EXPORTER_OTLP_ENDPOINT": " "})
    assert tracing.exporting({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert tracing.exporting({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"})


def test_the_context_travels_as_traceparent_and_comes_back() -> None:
    assert tracing.inject_metadata() == ()  # outside a span: nothing extra on the call
    parent = SpanContext(
        trace_id=int(TRACE_ID, 16),
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        metadata = tracing.inject_metadata()
        assert tracing.current_trace_id() == TRACE_ID
    finally:
        context.detach(token)
    assert dict(metadata)["traceparent"] == f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    # As a server reads it: keys in any case, binary entries ignored.
    received: list[tuple[str, str | bytes]] = [
        ("Traceparent", dict(metadata)["traceparent"]),
        ("x-bin", b"\x00"),
    ]
    extracted = trace.get_current_span(tracing.extract_metadata(received)).get_span_context()
    assert (extracted.trace_id, extracted.span_id) == (parent.trace_id, parent.span_id)
    assert extracted.is_remote
    assert not trace.get_current_span(tracing.extract_metadata(None)).get_span_context().is_valid


def test_the_trace_link_comes_from_the_template() -> None:
    template = {tracing.TRACE_URL_TEMPLATE_ENV: "https://tempo.example/trace/{trace_id}"}
    assert tracing.trace_url(TRACE_ID, template) == f"https://tempo.example/trace/{TRACE_ID}"
    assert tracing.trace_url(TRACE_ID, {}) == ""
    assert tracing.trace_url("", template) == ""


def test_executions_get_shows_the_trace_and_its_link(monkeypatch: pytest.MonkeyPatch) -> None:
    agent_run = agent_execution_pb2.AgentExecution(id="aex-1", trace_id=TRACE_ID)
    workflow_run = workflow_execution_pb2.WorkflowExecution(id="wex-1", trace_id=TRACE_ID)
    monkeypatch.delenv(tracing.TRACE_URL_TEMPLATE_ENV, raising=False)
    for text in (describe_execution(agent_run), describe_workflow_execution(workflow_run)):
        assert f"Trace: {TRACE_ID} " in " ".join(text.split())
    monkeypatch.setenv(tracing.TRACE_URL_TEMPLATE_ENV, "https://tempo.example/trace/{trace_id}")
    text = describe_execution(agent_run)
    assert f"{TRACE_ID} (https://tempo.example/trace/{TRACE_ID})" in text
    # An execution created while tracing was off has none.
    assert "Trace:" in describe_execution(agent_execution_pb2.AgentExecution(id="aex-2"))


def test_spans_come_from_the_installed_providers_tracer_got_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = install_tracing(monkeypatch)
    provider = tracing._provider
    first = tracing.tracer()

    def no_more(*args: object, **kwargs: object) -> trace.Tracer:
        raise AssertionError("get_tracer called again")

    # The SDK's get_tracer adds a warnings filter and warns each time: once is enough.
    monkeypatch.setattr(provider, "get_tracer", no_more)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert tracing.tracer() is first
        with tracing.execution_scope("aex-1"), tracing.span("polyfleet.model_call"):
            pass
    assert not caught
    (span,) = exporter.get_finished_spans()
    assert span.name == "polyfleet.model_call"
    assert span.attributes == {tracing.EXECUTION_ID: "aex-1"}
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "polyfleet"
