"""Spans that cost a fraction of the SDK's, exported through the provider's own processors.

An OpenTelemetry SDK span costs about 50 µs of CPU to create and end in-process, before any
export (docs/benchmarks.md, "Observability on vs off"): two generator-based context managers
around it, a lock-guarded ``BoundedAttributes`` (with its own lock) whose every value is
type-checked six ways, bounded lists for events and links, the SDK's own span metrics, and a
copy of the span for the processors when it ends. An agent execution makes about 11 spans in
the orchestrator and the runner. :class:`LeanTracer` makes :class:`LeanSpan`, the SDK's span
class with those parts replaced: attributes in a dict (plain values stored as they are,
others cleaned by OpenTelemetry's own rules), events and links in lists, one class-based
context manager, and the span itself handed to the processors.

Everything else is the provider's: its sampler (``OTEL_TRACES_SAMPLER``), resource, ID
generator and span processors (the batch processor and the OTLP exporter); the limits are
the SDK's ``SpanLimits`` from the ``OTEL_*_LIMIT`` variables. What a span records and exports
is what the SDK's would (``tests/unit/polyfleet/test_lean_spans.py`` compares the two).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from time import time_ns
from types import TracebackType
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.attributes import _clean_attribute_value
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, SpanLimits, SpanProcessor
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import DEFAULT_ON, Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types

logger = logging.getLogger(__name__)

_PLAIN = (str, bool, int, float)
_UNSET = Status(StatusCode.UNSET)


class LeanSpan(SdkSpan):
    """The SDK's span with cheaper attributes, events, links, start and end.

    Made by :class:`LeanTracer` only. The methods it does not override (``add_event``,
    ``record_exception``, ``set_status``, ``update_name``, ``add_link``, ``__exit__``) are
    the SDK's, on the lists and dict kept here.
    """

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        resource: Resource,
        attributes: Mapping[str, types.AnyValue],
        links: Sequence[Link],
        kind: SpanKind,
        processor: SpanProcessor,
        limits: SpanLimits,
        scope: InstrumentationScope,
        record_exception: bool,
        set_status_on_exception: bool,
    ) -> None:
        # The SDK's __init__ is not called: it builds what this class replaces.
        self._name = name
        self._context = context
        self._kind = kind
        self._instrumentation_info = None
        self._instrumentation_scope = scope
        self._parent = parent
        self._start_time: int | None = None
        self._end_time: int | None = None
        self._resource = resource
        self._status = _UNSET
        self._sampler = None
        self._trace_config = None
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception
        self._span_processor = processor
        self._limits = limits
        self._record_end_metrics = None
        # The SDK's decorators of add_event, add_link, set_status and update_name take it.
        self._lock = threading.Lock()
        self._attributes: dict[str, types.AnyValue] = {}
        self._dropped_attributes = 0
        self._dropped_events = 0
        self._dropped_links = 0
        self._events: list[Event] = []
        self._links: list[Link] = []
        if attributes:
            self._set(attributes)
        for link in links:
            self._add_link(link)

    @property
    def dropped_attributes(self) -> int:
        """Attributes refused by ``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT``."""
        return self._dropped_attributes

    @property
    def dropped_events(self) -> int:
        """Events refused by ``OTEL_SPAN_EVENT_COUNT_LIMIT``."""
        return self._dropped_events

    @property
    def dropped_links(self) -> int:
        """Links refused by ``OTEL_SPAN_LINK_COUNT_LIMIT``."""
        return self._dropped_links

    def _set(self, attributes: Mapping[str, types.AnyValue]) -> None:
        # The rules of the SDK's BoundedAttributes: a key must be a non-empty string, a
        # value is cleaned (sequences become tuples, long strings are cut), a key set again
        # moves to the end, and past the limit the oldest attribute is dropped.
        stored = self._attributes
        limit = self._limits.max_span_attributes
        max_length = self._limits.max_span_attribute_length
        for key, value in attributes.items():
            if not key or type(key) is not str:
                logger.warning("invalid attribute key %r; dropped", key)
                self._dropped_attributes += 1
                continue
            if type(value) not in _PLAIN or (max_length is not None and type(value) is str):
                value = _clean_attribute_value(value, max_length)
            if key in stored:
                del stored[key]
            elif limit is not None and len(stored) >= limit:
                self._dropped_attributes += 1
                if not stored:  # a limit of 0
                    continue
                del stored[next(iter(stored))]
            stored[key] = value

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        """Set ``attributes`` (ignored, with a warning, once the span ended)."""
        if self._end_time is not None:
            logger.warning("Setting attribute on ended span.")
            return
        self._set(attributes)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        """Set one attribute (ignored, with a warning, once the span ended)."""
        self.set_attributes({key: value})

    def _add_event(self, event: Any) -> None:
        if self._end_time is not None:
            logger.warning("Tried calling _add_event on an ended span.")
            return
        self._dropped_events += _append_bounded(self._events, event, self._limits.max_events)

    def _add_link(self, link: Any) -> None:
        if not link or not (link.context.is_valid or link.attributes or link.context.trace_state):
            return  # the SDK drops invalid links too
        if self._end_time is not None:
            logger.warning("Tried calling _add_link on an ended span.")
            return
        self._dropped_links += _append_bounded(self._links, link, self._limits.max_links)

    def start(
        self, start_time: int | None = None, parent_context: context_api.Context | None = None
    ) -> None:
        """Start the span and tell the processors."""
        if self._start_time is not None:
            logger.warning("Calling start() on a started span.")
            return
        self._start_time = start_time if start_time is not None else time_ns()
        self._span_processor.on_start(self, parent_context=parent_context)

    def end(self, end_time: int | None = None) -> None:
        """End the span and hand it, not a copy, to the processors (it no longer changes)."""
        if self._start_time is None:
            raise RuntimeError("Calling end() on a not started span.")
        if self._end_time is not None:
            logger.warning("Calling end() on an ended span.")
            return
        self._end_time = end_time if end_time is not None else time_ns()
        self._span_processor.on_end(self)


def _append_bounded(items: list[Any], item: Any, limit: int | None) -> int:
    """Append ``item``, dropping the oldest past ``limit`` (the SDK's BoundedList): drops."""
    if limit is None or len(items) < limit:
        items.append(item)
        return 0
    if limit > 0:
        del items[0]
        items.append(item)
    return 1


class _Current:
    """``start_as_current_span``'s context manager: ``use_span`` as a class, not a generator."""

    __slots__ = ("_end", "_record", "_set_status", "_span", "_token")

    def __init__(
        self, span: trace_api.Span, end_on_exit: bool, record_exception: bool, set_status: bool
    ) -> None:
        self._span = span
        self._end = end_on_exit
        self._record = record_exception
        self._set_status = set_status
        self._token: object = None

    def __enter__(self) -> trace_api.Span:
        self._token = context_api.attach(trace_api.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span = self._span
        try:
            context_api.detach(self._token)  # type: ignore[arg-type]
            # As use_span: Exception only (GeneratorExit and the like are no errors).
            if isinstance(exc, Exception) and span.is_recording():
                if self._record:
                    span.record_exception(exc)
                if self._set_status:
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            if self._end:
                span.end()


class LeanTracer(trace_api.Tracer):
    """A tracer making :class:`LeanSpan`, configured as the SDK tracer ``sdk`` is.

    Args:
        sdk: The provider's tracer for this instrumentation scope: its sampler, resource,
            ID generator and span processors are used.
        scope: The instrumentation scope's name (the tracer's).

    """

    def __init__(self, sdk: SdkTracer, scope: str) -> None:
        self._sampler: Sampler = sdk.sampler
        self._resource: Resource = sdk.resource
        self._processor: SpanProcessor = sdk.span_processor
        self._ids: IdGenerator = sdk.id_generator
        # What the provider made from the same OTEL_*_LIMIT variables.
        self._limits = SpanLimits()
        self._scope = InstrumentationScope(scope)

    def start_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        """A started span, child of the span current in ``context`` (the current context)."""
        links = links or ()
        parent: SpanContext | None = trace_api.get_current_span(context).get_span_context()
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = self._ids.generate_trace_id()
            random_id = self._ids.is_trace_id_random()
        else:
            trace_id = parent.trace_id
            random_id = parent.trace_flags.random_trace_id
        if self._sampler is DEFAULT_ON:
            # The default sampler's decision, without its SamplingResult: follow the
            # parent's, sample a root; the parent's trace state, the attributes as given.
            sampled = parent is None or parent.trace_flags.sampled
            recording = sampled
            trace_state = None if parent is None else parent.trace_state
        else:
            result = self._sampler.should_sample(context, trace_id, name, kind, attributes, links)
            sampled = result.decision.is_sampled()  # type: ignore[no-untyped-call]
            recording = result.decision.is_recording()  # type: ignore[no-untyped-call]
            trace_state = result.trace_state
            attributes = result.attributes  # what the sampler returns is the span's
        flags = TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT
        if random_id:
            flags |= TraceFlags.RANDOM_TRACE_ID
        span_context = SpanContext(
            trace_id,
            self._ids.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(flags),
            trace_state=trace_state,
        )
        if not recording:
            return trace_api.NonRecordingSpan(span_context)
        span = LeanSpan(
            name,
            span_context,
            parent,
            self._resource,
            attributes or {},
            links,
            kind,
            self._processor,
            self._limits,
            self._scope,
            record_exception,
            set_status_on_exception,
        )
        span.start(start_time=start_time, parent_context=context)
        return span

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> _Current:
        """A span made current for a ``with`` block, ended when it ends (``end_on_exit``)."""
        span = self.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        return _Current(span, end_on_exit, record_exception, set_status_on_exception)
