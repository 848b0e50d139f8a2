"""A span per API call, child of the trace context the caller sent (W3C ``traceparent``).

The first interceptor of the server, so the span covers authentication and every other
check. While tracing is off (polyfleet/telemetry/tracing.py) it returns the handler
unchanged and costs nothing per call.
"""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Any

import grpc
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from orchestrator.servicers.wrapping import Context, WrappingInterceptor, wrap_handler
from polyfleet import contract
from polyfleet.telemetry import tracing
from polyfleet.v1 import runner_pb2

# Probes and reflection: frequent, and no part of an execution's story.
_UNTRACED = ("/grpc.health.", "/grpc.reflection.")
_EXECUTION_PREFIXES = (
    f"{contract.AGENT_EXECUTION_ID_PREFIX}-",
    f"{contract.WORKFLOW_EXECUTION_ID_PREFIX}-",
)


def worth_a_span(request: Any) -> bool:
    """Whether serving ``request`` gets a span: all but progress reports of a live view only.

    A streaming agent reports its token deltas (and messages, tool calls, usage) every
    flush interval; a span for each would cost more than everything else in its trace and
    say nothing the model-call span does not. Reports that change the phase or carry the
    result or the error keep their span.
    """
    if not isinstance(request, runner_pb2.ReportProgressRequest):
        return True
    update = request.update
    return bool(
        update.phase
        or update.output_text
        or any(update.HasField(name) for name in ("error", "output", "workflow_output"))
    )


def _annotate(span: Span, request: Any) -> None:
    # RunnerService requests name their execution_id, Get/Cancel/Watch their id.
    for name in ("execution_id", "id"):
        value = getattr(request, name, None)
        if isinstance(value, str) and value.startswith(_EXECUTION_PREFIXES):
            span.set_attribute(tracing.EXECUTION_ID, value)
            return


def _finish(span: Span, context: Context, error: BaseException | None) -> None:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code is not grpc.StatusCode.OK:
            span.set_status(Status(StatusCode.ERROR, code.name))
            return
    if error is not None and not isinstance(error, grpc.aio.AbortError):
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))


class _Traced(contextlib.AbstractAsyncContextManager[None]):
    """One call's SERVER span.

    A class: a generator-based context manager costs several times more per call (two more
    objects and a generator to step).
    """

    __slots__ = ("_attributes", "_context", "_current", "_name", "_request", "_span")

    def __init__(
        self, name: str, attributes: dict[str, str], request: Any, context: Context
    ) -> None:
        self._name = name
        self._attributes = attributes
        self._request = request
        self._context = context
        self._current: contextlib.AbstractContextManager[Span] | None = None

    async def __aenter__(self) -> None:
        if not worth_a_span(self._request):
            return
        # Read only for a call that gets a span: live-view progress reports do not.
        parent = tracing.extract_metadata(self._context.invocation_metadata())
        current = tracing.tracer().start_as_current_span(
            self._name,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=self._attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        self._span = current.__enter__()
        self._current = current
        _annotate(self._span, self._request)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        current = self._current
        if current is None:
            return
        try:
            _finish(self._span, self._context, exc)
        finally:
            current.__exit__(exc_type, exc, traceback)


class ApiTracingInterceptor(WrappingInterceptor):
    """Serves each call inside a SERVER span named after its method."""

    def wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Wrap the method's handler in a span when tracing is on."""
        if not tracing.enabled() or method.startswith(_UNTRACED):
            return handler
        name = method.lstrip("/")
        service, _, rpc = name.rpartition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc}
        return wrap_handler(
            handler, lambda request, context: _Traced(name, attributes, request, context)
        )
