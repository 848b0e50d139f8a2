"""A span per API call, child of the trace context the caller sent (W3C ``traceparent``).

The first interceptor of the server, so the span covers authentication and every other
check. While tracing is off (polyfleet/telemetry/tracing.py) it returns the handler
unchanged and costs nothing per call.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
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

        @contextlib.asynccontextmanager
        async def traced(request: Any, context: Context) -> AsyncIterator[None]:
            if not worth_a_span(request):
                yield
                return
            # Read only for a call that gets a span: live-view progress reports do not.
            parent = tracing.extract_metadata(context.invocation_metadata())
            with tracing.tracer().start_as_current_span(
                name,
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                _annotate(span, request)
                error: BaseException | None = None
                try:
                    yield
                except BaseException as err:
                    error = err
                    raise
                finally:
                    _finish(span, context, error)

        return wrap_handler(handler, traced)
