"""polyfleet's lean spans record and export what the SDK's spans would, for the same calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from polyfleet.telemetry.lean_spans import LeanSpan, LeanTracer
from polyfleet.telemetry.otlp_spans import encode_request

Scenario = Callable[[trace.Tracer], None]


def run(scenario: Scenario, lean: bool) -> list[ReadableSpan]:
    """The spans ``scenario`` exports through an SDK provider, with its tracer or a lean one."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sdk = cast(SdkTracer, provider.get_tracer("polyfleet"))
    scenario(LeanTracer(sdk, "polyfleet") if lean else sdk)
    provider.shutdown()
    spans = list(exporter.get_finished_spans())
    assert all(isinstance(span, LeanSpan) for span in spans) is lean or not spans
    return spans


def shape(spans: list[ReadableSpan]) -> list[dict[str, Any]]:
    """What a span records, with its IDs as the names of the spans they point to."""
    names = {span.context.span_id: span.name for span in spans if span.context is not None}
    traces = {span.context.trace_id for span in spans if span.context is not None}
    return [
        {
            "name": span.name,
            "kind": span.kind,
            "parent": None if span.parent is None else names.get(span.parent.span_id, "remote"),
            "remote parent": span.parent is not None and span.parent.is_remote,
            "attributes": dict(span.attributes or {}),
            "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
            "events": [(e.name, dict(e.attributes or {})) for e in span.events],
            "links": [(link.context.span_id, dict(link.attributes or {})) for link in span.links],
            "status": (span.status.status_code, span.status.description),
            "flags": span.context.trace_flags if span.context is not None else None,
            "timed": span.start_time is not None and span.end_time is not None,
            # service.instance.id is random per resource, so per provider.
            "resource": {k: v for k, v in span.resource.attributes.items() if "instance" not in k},
            "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
            "one trace": len(traces),
        }
        for span in spans
    ]


def same(scenario: Scenario) -> list[dict[str, Any]]:
    """The shape of ``scenario``'s spans, asserting it is the SDK's."""
    ours, theirs = shape(run(scenario, lean=True)), shape(run(scenario, lean=False))
    for span in (*ours, *theirs):  # stack traces name this file's lines: the same either way
        for _, attributes in span["events"]:
            attributes.pop("exception.stacktrace", None)
    assert ours == theirs
    return ours


def nested(tracer: trace.Tracer) -> None:
    with tracer.start_as_current_span(
        "root", kind=SpanKind.SERVER, attributes={"n": 1, "list": [1, 2], "s": "x"}
    ) as root:
        root.set_attribute("later", "yes")
        root.set_attributes({"f": 1.5, "b": True, "n": 2})  # n moves to the end
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.add_event("step", {"k": "v"})
            child.set_status(Status(StatusCode.OK))
        detached = tracer.start_span("detached", attributes={"bytes": b"raw"})
        detached.update_name("renamed")
        detached.end()


def failing(tracer: trace.Tracer) -> None:
    with pytest.raises(ValueError, match="boom"):
        with tracer.start_as_current_span("recorded"):
            raise ValueError("boom")
    with pytest.raises(KeyError):
        with tracer.start_as_current_span(
            "quiet", record_exception=False, set_status_on_exception=False
        ):
            raise KeyError("k")
    span = tracer.start_span("explicit")
    span.record_exception(RuntimeError("noted"), attributes={"extra": 1})
    span.set_status(StatusCode.ERROR, "described")
    span.end()
    span.set_attribute("after", "end")  # ignored, as the SDK ignores it


REMOTE = SpanContext(
    trace_id=0x1234, span_id=0x99, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
)
LINKED = SpanContext(trace_id=0x77, span_id=0x88, is_remote=True)


def remote_parent_and_links(tracer: trace.Tracer) -> None:
    parent = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
    span = tracer.start_span(
        "remote child",
        context=parent,
        links=[Link(LINKED, {"why": "cause"}), Link(trace.INVALID_SPAN_CONTEXT)],
        start_time=1_000,
    )
    span.add_link(LINKED)
    span.end(end_time=2_000)
    token = context_api.attach(parent)
    try:
        with tracer.start_as_current_span("current child", end_on_exit=False) as kept:
            pass
        assert kept.is_recording()  # not ended on exit
        kept.end()
    finally:
        context_api.detach(token)


def unsampled_parent(tracer: trace.Tracer) -> None:
    unsampled = SpanContext(trace_id=0x5, span_id=0x6, is_remote=True)
    context = trace.set_span_in_context(trace.NonRecordingSpan(unsampled))
    span = tracer.start_span("not sampled", context=context)
    assert not span.is_recording()
    assert span.get_span_context().trace_id == 0x5
    span.end()


@pytest.mark.parametrize("scenario", [nested, failing, remote_parent_and_links, unsampled_parent])
def test_spans_are_the_sdks(scenario: Scenario) -> None:
    same(scenario)


def test_the_shapes_compared_are_not_empty() -> None:
    # The comparison is not vacuous: the scenarios record what they say.
    root, child, detached = _by_name(same(nested))
    assert root["attributes"] == {
        "list": (1, 2),
        "s": "x",
        "later": "yes",
        "f": 1.5,
        "b": True,
        "n": 2,
    }
    assert child["parent"] == "root" and child["events"] == [("step", {"k": "v"})]
    assert detached["name"] == "renamed" and detached["parent"] == "root"
    recorded = _by_name(same(failing))[0]
    assert recorded["status"] == (StatusCode.ERROR, "ValueError: boom")
    assert [name for name, _ in recorded["events"]] == ["exception"]
    remote = _by_name(same(remote_parent_and_links))[0]
    assert remote["remote parent"] and len(remote["links"]) == 2
    assert same(unsampled_parent) == []


def _by_name(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = ["root", "child", "renamed", "recorded", "quiet", "explicit", "remote child"]
    return sorted(spans, key=lambda s: order.index(s["name"]) if s["name"] in order else 99)


def test_limits_from_the_environment_apply_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "2")
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "3")
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "1")
    monkeypatch.setenv("OTEL_SPAN_LINK_COUNT_LIMIT", "1")

    def crowded(tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span("crowded", attributes={"a": "long value", "b": 2}) as s:
            s.set_attribute("c", 3)
            s.add_event("one")
            s.add_event("two")
            s.add_link(LINKED, {"n": 1})
            s.add_link(REMOTE, {"n": 2})

    (span,) = same(crowded)
    assert span["attributes"] == {"b": 2, "c": 3}
    assert span["dropped"] == (1, 1, 1)
    assert span["events"] == [("two", {})]  # the newest kept, as the SDK keeps them
    assert span["links"] == [(REMOTE.span_id, {"n": 2})]


def test_the_configured_sampler_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    assert same(nested) == []

    def child_of_unsampled(tracer: trace.Tracer) -> None:
        unsampled = SpanContext(trace_id=0x5, span_id=0x6, is_remote=True)
        context = trace.set_span_in_context(trace.NonRecordingSpan(unsampled))
        tracer.start_span("sampled anyway", context=context).end()

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    # The default sampler follows the unsampled parent; always_on samples the child anyway.
    (span,) = same(child_of_unsampled)
    assert span["name"] == "sampled anyway" and span["remote parent"]


def test_lean_spans_encode_as_the_sdks_do() -> None:
    def without_events(tracer: trace.Tracer) -> None:
        parent = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
        with tracer.start_as_current_span(
            "server", context=parent, kind=SpanKind.SERVER, attributes={"a": "b", "l": [1, 2]}
        ) as span:
            span.set_status(StatusCode.ERROR, "failed")
            tracer.start_span("linked", links=[Link(LINKED, {"why": "cause"})]).end()

    ours = run(without_events, lean=True)
    theirs = run(without_events, lean=False)
    # Same IDs and times, so the encodings compare byte for byte.
    for mine, sdk in zip(ours, theirs, strict=True):
        mine._context, mine._parent = sdk.context, sdk.parent
        mine._start_time, mine._end_time = sdk.start_time, sdk.end_time
        mine._resource = sdk.resource
    assert encode_request(ours) == encode_request(theirs)
