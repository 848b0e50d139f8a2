"""OTLP span export, with the request written directly in protobuf's wire format.

The OpenTelemetry exporter builds an ``ExportTraceServiceRequest`` message by message: about
60 µs per span on this project's benchmark machine, most of it Python-level construction of
``KeyValue``/``AnyValue`` objects and a JSON dump of the resource for every span (to group
spans by resource). :func:`encode_request` writes the same request as bytes in one pass:
spans grouped by the identity of their resource and scope objects (one per provider), and
each attribute pair encoded once per batch. :class:`FastOTLPSpanExporter` hands the bytes to
the exporter's gRPC stub, so endpoint, headers, TLS, compression, timeout and retries stay
the OpenTelemetry exporter's (its ``OTEL_EXPORTER_OTLP_*`` variables).

The encoding follows ``opentelemetry/proto/trace/v1/trace.proto``: proto3, default values
omitted, fields in number order; ``tests/unit/polyfleet/test_otlp_spans.py`` checks that
the bytes are the OpenTelemetry encoder's, byte for byte.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext

logger = logging.getLogger(__name__)

_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_double = struct.Struct("<d").pack
# Single-byte varints, precomputed: tags and most lengths are below 128.
_SMALL = [bytes((i,)) for i in range(0x80)]
_INT64 = range(-(1 << 63), 1 << 63)

# SpanFlags: the parent's remoteness is known (bit 8) and, when set, remote (bit 9).
_FLAGS_HAS_IS_REMOTE = 0x100
_FLAGS_IS_REMOTE = 0x200
# Attribute pairs remembered per batch at most (an execution's spans share most of theirs).
_MAX_CACHED_PAIRS = 4096


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _SMALL[value]
    if value < 0:
        value += 1 << 64  # int64 as protobuf writes it: two's complement, ten bytes
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, the payload's length, the payload."""
    return tag + _varint(len(payload)) + payload


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


# Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32.
_ANY_STRING = _tag(1, 2)
_ANY_BOOL_TRUE = _tag(2, 0) + b"\x01"
_ANY_BOOL_FALSE = _tag(2, 0) + b"\x00"
_ANY_INT = _tag(3, 0)
_ANY_DOUBLE = _tag(4, 1)
_ANY_ARRAY = _tag(5, 2)
_ANY_KVLIST = _tag(6, 2)
_ANY_BYTES = _tag(7, 2)
_KV_KEY = _tag(1, 2)
_KV_VALUE = _tag(2, 2)
_LIST_VALUES = _tag(1, 2)  # ArrayValue.values and KeyValueList.values

_TRACE_ID = _tag(1, 2)  # Span.trace_id and Link.trace_id
_SPAN_ID = _tag(2, 2)  # Span.span_id and Link.span_id
_SPAN_TRACE_STATE = _tag(3, 2)
_SPAN_PARENT_SPAN_ID = _tag(4, 2)
_SPAN_NAME = _tag(5, 2)
_SPAN_KIND = _tag(6, 0)
_SPAN_START = _tag(7, 1)
_SPAN_END = _tag(8, 1)
_SPAN_ATTRIBUTES = _tag(9, 2)
_SPAN_DROPPED_ATTRIBUTES = _tag(10, 0)
_SPAN_EVENTS = _tag(11, 2)
_SPAN_DROPPED_EVENTS = _tag(12, 0)
_SPAN_LINKS = _tag(13, 2)
_SPAN_DROPPED_LINKS = _tag(14, 0)
_SPAN_STATUS = _tag(15, 2)
_SPAN_FLAGS = _tag(16, 5)
_EVENT_TIME = _tag(1, 1)
_EVENT_NAME = _tag(2, 2)
_EVENT_ATTRIBUTES = _tag(3, 2)
_EVENT_DROPPED_ATTRIBUTES = _tag(4, 0)
_LINK_ATTRIBUTES = _tag(4, 2)
_LINK_DROPPED_ATTRIBUTES = _tag(5, 0)
_LINK_FLAGS = _tag(6, 5)
_STATUS_MESSAGE = _tag(2, 2)
_STATUS_CODE = _tag(3, 0)
_SCOPE_NAME = _tag(1, 2)
_SCOPE_VERSION = _tag(2, 2)
_SCOPE_ATTRIBUTES = _tag(3, 2)
_RESOURCE_ATTRIBUTES = _tag(1, 2)
_SCOPE_SPANS_SCOPE = _tag(1, 2)
_SCOPE_SPANS_SPANS = _tag(2, 2)
_SCOPE_SPANS_SCHEMA_URL = _tag(3, 2)
_RESOURCE_SPANS_RESOURCE = _tag(1, 2)
_RESOURCE_SPANS_SCOPE_SPANS = _tag(2, 2)
_RESOURCE_SPANS_SCHEMA_URL = _tag(3, 2)
_REQUEST_RESOURCE_SPANS = _tag(1, 2)


def _any_value(value: Any) -> bytes:
    """An ``AnyValue``'s payload.

    Its value is a ``oneof``, so a default value (``""``, 0, false) is still written.
    """
    if isinstance(value, bool):
        return _ANY_BOOL_TRUE if value else _ANY_BOOL_FALSE
    if isinstance(value, str):
        return _field(_ANY_STRING, value.encode())
    if isinstance(value, int):
        if value not in _INT64:
            raise ValueError(f"{value} is out of the int64 range")
        return _ANY_INT + _varint(value)
    if isinstance(value, float):
        return _ANY_DOUBLE + _pack_double(value)
    if isinstance(value, bytes):
        return _field(_ANY_BYTES, value)
    if value is None:
        return b""
    if isinstance(value, Sequence):
        return _field(
            _ANY_ARRAY, b"".join(_field(_LIST_VALUES, _any_value(item)) for item in value)
        )
    if isinstance(value, Mapping):
        return _field(
            _ANY_KVLIST,
            b"".join(_field(_LIST_VALUES, _key_value(str(k), v)) for k, v in value.items()),
        )
    raise TypeError(f"invalid attribute value type {type(value).__name__}")


def _key_value(key: str, value: Any) -> bytes:
    """A ``KeyValue``'s payload."""
    encoded_key = _field(_KV_KEY, key.encode()) if key else b""
    return encoded_key + _field(_KV_VALUE, _any_value(value))


_CACHED_TYPES = frozenset({str, int, bool, bytes})


class _Encoder:
    """One request's encoding; remembers the attribute pairs it has written."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, type, Any], bytes] = {}

    def attributes(self, tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
        """The repeated ``KeyValue`` field ``tag`` for ``attributes``."""
        if not attributes:
            return b""
        pairs = self._pairs
        parts = []
        for key, value in attributes.items():
            # Scalars only: floats aside (-0.0 == 0.0 but encodes otherwise), and sequences
            # and mappings (not always hashable) are encoded each time.
            cache_key = (key, type(value), value) if type(value) in _CACHED_TYPES else None
            encoded = pairs.get(cache_key) if cache_key is not None else None
            if encoded is None:
                try:
                    encoded = _field(tag, _key_value(key, value))
                except Exception as error:  # noqa: BLE001 - one bad attribute, not the batch
                    # The OpenTelemetry encoder logs and skips such an attribute too.
                    logger.warning("cannot encode span attribute %s: %s", key, error)
                    continue
                if cache_key is not None and len(pairs) < _MAX_CACHED_PAIRS:
                    pairs[cache_key] = encoded
            parts.append(encoded)
        return b"".join(parts)

    def span(self, span: ReadableSpan) -> bytes:
        """A ``Span``'s payload."""
        context = span.get_span_context()
        assert context is not None  # a recorded span always has one
        parent = span.parent
        parts = [_ids(context)]
        trace_state = _trace_state(context)
        if trace_state:
            parts.append(_field(_SPAN_TRACE_STATE, trace_state))
        if parent is not None:
            parts += (_SPAN_PARENT_SPAN_ID, b"\x08", parent.span_id.to_bytes(8, "big"))
        if span.name:
            parts.append(_field(_SPAN_NAME, span.name.encode()))
        # SpanKind's SDK values are the protobuf's minus one (INTERNAL 0 -> 1).
        parts += (_SPAN_KIND, _SMALL[span.kind.value + 1])
        if span.start_time:
            parts += (_SPAN_START, _pack_fixed64(span.start_time))
        if span.end_time:
            parts += (_SPAN_END, _pack_fixed64(span.end_time))
        parts.append(self.attributes(_SPAN_ATTRIBUTES, span.attributes))
        if span.dropped_attributes:
            parts += (_SPAN_DROPPED_ATTRIBUTES, _varint(span.dropped_attributes))
        for event in span.events:
            parts.append(_field(_SPAN_EVENTS, self._event(event)))
        if span.dropped_events:
            parts += (_SPAN_DROPPED_EVENTS, _varint(span.dropped_events))
        for link in span.links:
            parts.append(_field(_SPAN_LINKS, self._link(link)))
        if span.dropped_links:
            parts += (_SPAN_DROPPED_LINKS, _varint(span.dropped_links))
        status = span.status
        if status is not None:
            parts.append(
                _field(_SPAN_STATUS, _status(status.description, status.status_code.value))
            )
        parts += (_SPAN_FLAGS, _pack_fixed32(_flags(parent)))
        return b"".join(parts)

    def _event(self, event: Any) -> bytes:
        parts: list[bytes] = []
        if event.timestamp:
            parts += (_EVENT_TIME, _pack_fixed64(event.timestamp))
        if event.name:
            parts.append(_field(_EVENT_NAME, event.name.encode()))
        parts.append(self.attributes(_EVENT_ATTRIBUTES, event.attributes))
        if event.dropped_attributes:
            parts += (_EVENT_DROPPED_ATTRIBUTES, _varint(event.dropped_attributes))
        return b"".join(parts)

    def _link(self, link: Any) -> bytes:
        context = link.context
        parts = [_ids(context), self.attributes(_LINK_ATTRIBUTES, link.attributes)]
        if link.dropped_attributes:
            parts += (_LINK_DROPPED_ATTRIBUTES, _varint(link.dropped_attributes))
        parts += (_LINK_FLAGS, _pack_fixed32(_flags(context)))
        return b"".join(parts)


def _ids(context: SpanContext) -> bytes:
    """The trace and span ID fields, numbered 1 and 2 in both ``Span`` and ``Link``."""
    return b"".join(
        (
            _TRACE_ID,
            b"\x10",
            context.trace_id.to_bytes(16, "big"),
            _SPAN_ID,
            b"\x08",
            context.span_id.to_bytes(8, "big"),
        )
    )


def _trace_state(context: SpanContext) -> bytes:
    state = context.trace_state
    if not state:
        return b""
    return ",".join(f"{key}={value}" for key, value in state.items()).encode()


def _flags(parent: SpanContext | None) -> int:
    if parent is not None and parent.is_remote:
        return _FLAGS_HAS_IS_REMOTE | _FLAGS_IS_REMOTE
    return _FLAGS_HAS_IS_REMOTE


def _status(description: str | None, code: int) -> bytes:
    message = _field(_STATUS_MESSAGE, description.encode()) if description else b""
    return message + (_STATUS_CODE + _SMALL[code] if code else b"")


def _scope(encoder: _Encoder, scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    parts: list[bytes] = []
    if scope.name:
        parts.append(_field(_SCOPE_NAME, scope.name.encode()))
    if scope.version:
        parts.append(_field(_SCOPE_VERSION, scope.version.encode()))
    parts.append(encoder.attributes(_SCOPE_ATTRIBUTES, scope.attributes))
    return b"".join(parts)


def encode_request(spans: Sequence[ReadableSpan]) -> bytes:
    """``spans`` as a serialized ``ExportTraceServiceRequest``.

    Args:
        spans: Finished spans, as a span processor hands them to its exporter.

    Returns:
        The request's bytes: one ``ResourceSpans`` per resource, one ``ScopeSpans`` per
        instrumentation scope within it, the spans in their order.

    """
    encoder = _Encoder()
    # Grouped by object identity: a provider's spans share its resource and scope objects
    # (hashing a Resource dumps it to JSON, every time).
    groups: dict[int, tuple[Resource, dict[int, tuple[InstrumentationScope | None, list[bytes]]]]]
    groups = {}
    for span in spans:
        resource = span.resource
        entry = groups.get(id(resource))
        if entry is None:
            entry = groups[id(resource)] = (resource, {})
        scope = span.instrumentation_scope
        scoped = entry[1].get(id(scope))
        if scoped is None:
            scoped = entry[1][id(scope)] = (scope, [])
        scoped[1].append(_field(_SCOPE_SPANS_SPANS, encoder.span(span)))
    request = []
    for resource, scopes in groups.values():
        resource_spans = [
            _field(
                _RESOURCE_SPANS_RESOURCE,
                encoder.attributes(_RESOURCE_ATTRIBUTES, resource.attributes),
            )
        ]
        for scope, encoded in scopes.values():
            scope_spans = [_field(_SCOPE_SPANS_SCOPE, _scope(encoder, scope)), *encoded]
            if scope is not None and scope.schema_url:
                scope_spans.append(_field(_SCOPE_SPANS_SCHEMA_URL, scope.schema_url.encode()))
            resource_spans.append(_field(_RESOURCE_SPANS_SCOPE_SPANS, b"".join(scope_spans)))
        if resource.schema_url:
            resource_spans.append(_field(_RESOURCE_SPANS_SCHEMA_URL, resource.schema_url.encode()))
        request.append(_field(_REQUEST_RESOURCE_SPANS, b"".join(resource_spans)))
    return b"".join(request)


_EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class _BytesTraceServiceStub:
    """``TraceService`` whose ``Export`` takes the request already serialized."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.Export: grpc.UnaryUnaryMultiCallable[bytes, ExportTraceServiceResponse]
        self.Export = channel.unary_unary(
            _EXPORT_METHOD,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )


class FastOTLPSpanExporter(OTLPSpanExporter):
    """The OpenTelemetry OTLP/gRPC span exporter, with requests from :func:`encode_request`.

    Everything but the encoding is the OpenTelemetry exporter's: its settings, channel,
    retries and reconnection (it rebuilds its stub on UNAVAILABLE, hence the override of
    the stub's creation rather than a replacement once). The two methods overridden are the
    exporter's own hooks, not public API: tests/integration/test_tracing.py exports through
    this class to a real receiver, so an OpenTelemetry update that changes them fails there.
    """

    def _initialize_channel_and_stub(self) -> None:
        super()._initialize_channel_and_stub()  # type: ignore[no-untyped-call]
        channel: grpc.Channel = self._channel  # type: ignore[assignment]  # just made
        self._client = _BytesTraceServiceStub(channel)  # type: ignore[assignment]

    def _translate_data(self, data: Sequence[ReadableSpan]) -> bytes:  # type: ignore[override]
        return encode_request(data)
