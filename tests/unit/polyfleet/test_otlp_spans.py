"""The OTLP span request written directly: the OpenTelemetry encoder's bytes, exactly."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from polyfleet.telemetry.otlp_spans import encode_request


class _Kept(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def _provider(kept: _Kept, service: str, **kwargs: object) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource({"service.name": service, "host.count": 2}, schema_url="https://r"),
        **kwargs,  # type: ignore[arg-type]
    )
    provider.add_span_processor(SimpleSpanProcessor(kept))
    return provider


@pytest.fixture
def spans() -> Iterator[list[ReadableSpan]]:
    """Spans of two providers and three scopes, with every kind of field set and unset."""
    kept = _Kept()
    first = _provider(kept, "polyfleet-orchestrator")
    second = _provider(kept, "polyfleet-runner", span_limits=SpanLimits(max_span_attributes=2))
    tracer = first.get_tracer("polyfleet", "1.2", schema_url="https://s")
    other = first.get_tracer("temporalio", attributes={"scope.attr": "x"})
    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "v1"), ("other", "o2")]),
    )
    with tracer.start_as_current_span(
        "polyfleet.v1.ExecutionService/CreateExecution",
        context=set_span_in_context(NonRecordingSpan(remote)),
        kind=SpanKind.SERVER,
        attributes={
            "rpc.system": "grpc",
            "empty": "",
            "zero": 0,
            "negative": -5,
            "big": 2**62,
            "no": False,
            "yes": True,
            "pi": 3.25,
            "minus_zero": -0.0,
            "zero_float": 0.0,
            "raw": b"\x00\xff",
            "names": ("a", "", "é"),
            "numbers": (1, -2, 0),
            "flags": (True, False),
            "floats": (0.5, -1.0),
        },
    ) as root:
        root.add_event("retry", {"attempt": 2, "reason": "UNAVAILABLE"})
        root.add_event("")
        with other.start_as_current_span(
            "RunWorkflow:AgentExecutionWorkflow",
            kind=SpanKind.CLIENT,
            links=[Link(remote, {"link.attr": 1}), Link(root.get_span_context())],
        ) as child:
            child.set_status(Status(StatusCode.ERROR, "model unavailable"))
        with tracer.start_as_current_span("ok", kind=SpanKind.PRODUCER) as ok:
            ok.set_status(Status(StatusCode.OK))
        with tracer.start_as_current_span("", kind=SpanKind.CONSUMER):
            pass
    with second.get_tracer("polyfleet").start_as_current_span(
        "runner.model_call", attributes={"a": "1", "b": "2", "c": "3"}
    ):
        pass
    # The same attribute pairs again, in another batch position (the encoder remembers them).
    with tracer.start_as_current_span("again", attributes={"rpc.system": "grpc", "zero": 0}):
        pass
    yield kept.spans
    first.shutdown()
    second.shutdown()


def test_the_bytes_are_the_opentelemetry_encoders(spans: list[ReadableSpan]) -> None:
    assert len(spans) == 6
    assert any(span.dropped_attributes for span in spans)
    assert encode_request(spans) == encode_spans(spans).SerializeToString()


def test_each_span_alone_and_no_spans(spans: list[ReadableSpan]) -> None:
    for span in spans:
        assert encode_request([span]) == encode_spans([span]).SerializeToString()
    assert encode_request([]) == b""


def test_an_attribute_protobuf_cannot_hold_is_left_out_like_the_sdk_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kept = _Kept()
    provider = _provider(kept, "polyfleet-runner")
    with provider.get_tracer("polyfleet").start_as_current_span(
        "huge", attributes={"fine": "yes", "too_big": 2**64}
    ):
        pass
    with caplog.at_level(logging.WARNING):
        encoded = encode_request(kept.spans)
    assert "too_big" in caplog.text
    with caplog.at_level(logging.CRITICAL):  # the SDK's encoder logs its own traceback
        expected = encode_spans(kept.spans).SerializeToString()
    assert encoded == expected
