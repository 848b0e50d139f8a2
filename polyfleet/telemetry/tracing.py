"""Traces: one per execution, from the API call that creates it to the runner's model calls.

Each process sets up its tracer provider once (:func:`setup`) from the standard ``OTEL_*``
variables: spans are exported over OTLP (gRPC) when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set; otherwise tracing stays off and every helper
here returns at once, without creating a span. ``OTEL_SERVICE_NAME`` names the process
(default ``polyfleet-orchestrator`` / ``polyfleet-runner``), ``OTEL_TRACES_SAMPLER`` and
``OTEL_BSP_*`` are honoured by the SDK.

The context travels as W3C ``traceparent`` in gRPC metadata (:func:`inject_metadata`,
:func:`extract_metadata`) and in Temporal headers (:func:`temporal_interceptors`, temporalio's
``TracingInterceptor`` less its zero-length workflow markers, :mod:`.temporal_tracing`).
Spans of polyfleet's own work carry the execution ID as :data:`EXECUTION_ID` (set for a
block with :func:`execution_scope`). :func:`tracer` makes them, and temporalio's, with
:mod:`.lean_spans`. See docs/observability.md, "Traces".
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    format_trace_id,
)
from opentelemetry.util.types import AttributeValue

from polyfleet.config import TracingSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from temporalio.client import Interceptor


# The span attribute naming the execution a span belongs to.
EXECUTION_ID = "polyfleet.execution_id"
ORCHESTRATOR_SERVICE = "polyfleet-orchestrator"
RUNNER_SERVICE = "polyfleet-runner"
# POLYFLEET_TRACE_URL_TEMPLATE: e.g. https://tempo.example/trace/{trace_id}.
TRACE_URL_TEMPLATE_ENV = "POLYFLEET_TRACE_URL_TEMPLATE"
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_TRACER_NAME = "polyfleet"

_execution_id: ContextVar[str] = ContextVar("polyfleet_trace_execution_id", default="")
# The provider this process installed; None: tracing is off.
_provider: TracerProvider | None = None
# Its tracer, got once: the SDK's get_tracer is not a lookup (see :func:`tracer`).
_tracer: trace.Tracer | None = None


def exporting(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces (an OTLP endpoint is set)."""
    env = os.environ if environ is None else environ
    return any(env.get(name, "").strip() for name in _ENDPOINT_VARIABLES)


def build_provider(
    service_name: str, exporter: SpanExporter, *, schedule_delay_millis: float | None = None
) -> TracerProvider:
    """A tracer provider that batches spans to ``exporter``.

    Args:
        service_name: The ``service.name`` resource attribute.
        exporter: Where spans go (OTLP in production).
        schedule_delay_millis: Longest wait before a batch is sent; None: the SDK's
            (``OTEL_BSP_SCHEDULE_DELAY``, 5 s).

    """
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The sampler comes from OTEL_TRACES_SAMPLER / _ARG (the SDK reads them itself).
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(
        BatchSpanProcessor(exporter, schedule_delay_millis=schedule_delay_millis)
    )
    return provider


def provider_from_env(default_service_name: str) -> TracerProvider | None:
    """The provider the ``OTEL_*`` variables describe, or None when tracing is off.

    Args:
        default_service_name: ``service.name`` when ``OTEL_SERVICE_NAME`` is unset.

    """
    if not exporting():
        return None
    from polyfleet.telemetry.otlp_spans import FastOTLPSpanExporter

    service_name = os.environ.get("OTEL_SERVICE_NAME", "").strip() or default_service_name
    # The exporter reads its endpoint, headers, TLS and timeout from OTEL_EXPORTER_OTLP_*.
    return build_provider(service_name, FastOTLPSpanExporter())


def install(provider: TracerProvider) -> None:
    """Make ``provider`` the process's tracer provider and turn tracing on.

    OpenTelemetry allows one global provider per process: a second call keeps the first
    (tests install one per session).
    """
    global _provider, _tracer
    if _provider is not None:
        return
    from opentelemetry.sdk.trace import Tracer as SdkTracer

    from polyfleet.telemetry.lean_spans import LeanTracer

    trace.set_tracer_provider(provider)
    _provider = provider
    sdk_tracer = provider.get_tracer(_TRACER_NAME)
    # polyfleet's spans (and temporalio's, which it hands this tracer) are LeanSpans, made
    # with the provider's sampler, resource, IDs and processors; OTEL_SDK_DISABLED's
    # no-op tracer stays as it is.
    _tracer = (
        LeanTracer(sdk_tracer, _TRACER_NAME) if isinstance(sdk_tracer, SdkTracer) else sdk_tracer
    )


def setup(default_service_name: str) -> bool:
    """Set up this process's tracing from the environment (see the module doc).

    Args:
        default_service_name: :data:`ORCHESTRATOR_SERVICE` or :data:`RUNNER_SERVICE`.

    Returns:
        True when spans are exported; False when tracing is off.

    """
    if _provider is not None:
        return True
    provider = provider_from_env(default_service_name)
    if provider is None:
        return False
    install(provider)
    return True


def enabled() -> bool:
    """Whether this process records spans."""
    return _provider is not None


def flush(timeout_millis: int = 5000) -> None:
    """Send the spans still batched (at shutdown; the SDK also does it at exit)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis)


def tracer() -> trace.Tracer:
    """Polyfleet's tracer (a no-op one while tracing is off).

    The installed provider's tracer is kept: every ``get_tracer`` call of the SDK adds a
    warnings filter (which empties every module's warnings cache) and emits a deprecation
    warning, about 20 µs, and this is called for every span.
    """
    if _tracer is not None:
        return _tracer
    return trace.get_tracer(_TRACER_NAME)


def current_trace_id() -> str:
    """The current span's trace ID as 32 hex characters, or "" outside a trace."""
    context = trace.get_current_span().get_span_context()
    return format_trace_id(context.trace_id) if context.is_valid else ""


def annotate(execution_id: str) -> None:
    """Name ``execution_id`` on the current span (:data:`EXECUTION_ID`)."""
    span = trace.get_current_span()
    if execution_id and span.is_recording():
        span.set_attribute(EXECUTION_ID, execution_id)


@contextlib.contextmanager
def execution_scope(execution_id: str) -> Iterator[None]:
    """Within the block, spans of :func:`span` belong to ``execution_id``.

    The current span (e.g. the Temporal activity's) is annotated too.
    """
    annotate(execution_id)
    token = _execution_id.set(execution_id)
    try:
        yield
    finally:
        _execution_id.reset(token)


def _attributes(
    attributes: Mapping[str, AttributeValue] | None,
) -> dict[str, AttributeValue]:
    found: dict[str, AttributeValue] = {}
    execution_id = _execution_id.get()
    if execution_id:
        found[EXECUTION_ID] = execution_id
    if attributes:
        found.update(attributes)
    return found


@contextlib.contextmanager
def span(
    name: str,
    attributes: Mapping[str, AttributeValue] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
) -> Iterator[Span]:
    """A span around the block, child of the current one, with the execution ID.

    While tracing is off this yields a non-recording span and creates nothing. An
    exception leaving the block sets the span's status to ERROR with its type only: its
    message (a provider's, a tool's) is not the trace's to carry.
    """
    if _provider is None:
        yield INVALID_SPAN
        return
    with tracer().start_as_current_span(
        name,
        attributes=_attributes(attributes),
        kind=kind,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as err:
            current.set_status(Status(StatusCode.ERROR, type(err).__name__))
            raise


def start_span(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> Span:
    """A span that is not made current (the caller ends it), with the execution ID."""
    if _provider is None:
        return INVALID_SPAN
    return tracer().start_span(name, attributes=_attributes(attributes))


@contextlib.contextmanager
def within(current: Span) -> Iterator[None]:
    """Make ``current`` (from :func:`start_span`) the current span for the block."""
    if _provider is None:
        yield
        return
    with trace.use_span(
        current, end_on_exit=False, record_exception=False, set_status_on_exception=False
    ):
        yield


@contextlib.contextmanager
def continuing(trace_id: str) -> Iterator[None]:
    """Run the block in trace ``trace_id`` when it is not already the current trace.

    For work done for an execution outside the call that created it (a queued execution
    started later, the reconciler starting a workflow): its spans join the execution's
    trace under a remote parent that is not in it.
    """
    if _provider is None or not trace_id or current_trace_id() == trace_id:
        yield
        return
    try:
        number = int(trace_id, 16)
    except ValueError:
        number = 0
    if not number:
        yield
        return
    parent = SpanContext(
        trace_id=number,
        span_id=random.getrandbits(64) or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        yield
    finally:
        otel_context.detach(token)


def inject_metadata() -> tuple[tuple[str, str], ...]:
    """The current trace context as gRPC metadata (``traceparent``, ``tracestate``).

    Empty outside a valid span, so a call made without tracing carries nothing extra.
    """
    if not trace.get_current_span().get_span_context().is_valid:
        return ()
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple((key.lower(), value) for key, value in carrier.items())


def extract_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> otel_context.Context:
    """The trace context a caller sent in gRPC metadata (empty when it sent none)."""
    carrier = {str(key).lower(): value for key, value in metadata or () if isinstance(value, str)}
    return propagate.extract(carrier)


def temporal_interceptors() -> list[Interceptor]:
    """Temporalio's tracing interceptor (without its zero-length markers) while tracing is on.

    On a client it traces workflow starts (the start joins the current trace) and, through
    the client's workers, workflows and activities, carrying the context in Temporal
    headers.
    """
    if _provider is None:
        return []
    from polyfleet.telemetry.temporal_tracing import TemporalTracing

    return [TemporalTracing(tracer())]


def trace_url(trace_id: str, environ: Mapping[str, str] | None = None) -> str:
    """The link to ``trace_id`` from ``POLYFLEET_TRACE_URL_TEMPLATE``, or "" without one."""
    if environ is None:
        template = TracingSettings().url_template.strip()
    else:
        template = environ.get(TRACE_URL_TEMPLATE_ENV, "").strip()
    if not template or not trace_id:
        return ""
    return template.replace("{trace_id}", trace_id)
