"""API calls served in a server span: which get one, its parent, status and attributes."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.struct_pb2 import Struct, Value
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestrator.servicers.tracing import ApiTracingInterceptor, worth_a_span
from polyfleet.telemetry import tracing
from polyfleet.v1 import agent_execution_pb2, common_pb2, runner_pb2
from tests.helpers import install_tracing


def _report(**update: Any) -> runner_pb2.ReportProgressRequest:
    return runner_pb2.ReportProgressRequest(
        execution_id="aex-1", report_id="r", update=common_pb2.ExecutionUpdate(**update)
    )


@pytest.mark.parametrize(
    "update",
    [
        {"content_delta": "tok", "delta_message_id": "m1"},
        {"messages": [common_pb2.Message(id="m1", content="hi")]},
        {"usage": common_pb2.Usage(input_tokens=3)},
        {"tasks": [common_pb2.TaskStatus(id="/do/0/a")]},
        {},
    ],
)
def test_a_live_view_report_gets_no_span(update: dict[str, Any]) -> None:
    assert not worth_a_span(_report(**update))


@pytest.mark.parametrize(
    "update",
    [
        {"phase": common_pb2.EXECUTION_PHASE_RUNNING},
        {"error": common_pb2.ExecutionError(type="X")},
        {"output_text": "done"},
        {"output": Struct()},
        {"workflow_output": Value(string_value="x")},
        {"phase": common_pb2.EXECUTION_PHASE_RUNNING, "content_delta": "tok"},
    ],
)
def test_a_report_that_changes_the_execution_gets_a_span(update: dict[str, Any]) -> None:
    assert worth_a_span(_report(**update))


def test_every_other_request_gets_a_span() -> None:
    assert worth_a_span(agent_execution_pb2.GetAgentExecutionRequest(id="aex-1"))
    assert worth_a_span(runner_pb2.EnsureThreadRequest())


class FakeContext:
    """What the interceptor reads of a served call's context."""

    def __init__(self, code: grpc.StatusCode | None = None, traceparent: str = "") -> None:
        self._code = code
        self._metadata = (("traceparent", traceparent),) if traceparent else ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def code(self) -> grpc.StatusCode | None:
        return self._code


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    return install_tracing(monkeypatch)


async def _serve(request: Any, context: FakeContext, error: BaseException | None = None) -> Any:
    async def servicer(request: Any, context: Any) -> str:
        if error is not None:
            raise error
        return "done"

    method = "/polyfleet.v1.AgentExecutionService/GetAgentExecution"
    handler: Any = grpc.unary_unary_rpc_method_handler(servicer)
    wrapped: Any = ApiTracingInterceptor().wrap(handler, method)
    return await wrapped.unary_unary(request, context)


async def test_a_call_is_served_in_a_server_span_child_of_the_callers(
    exported: InMemorySpanExporter,
) -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    request = agent_execution_pb2.GetAgentExecutionRequest(id="aex-1")
    assert await _serve(request, FakeContext(grpc.StatusCode.OK, parent)) == "done"
    (span,) = exported.get_finished_spans()
    assert span.name == "polyfleet.v1.AgentExecutionService/GetAgentExecution"
    assert span.kind is trace.SpanKind.SERVER
    assert span.parent is not None and span.parent.span_id == 0xB7AD6B7169203331
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == 0
    assert span.attributes[tracing.EXECUTION_ID] == "aex-1"
    assert span.status.status_code is trace.StatusCode.UNSET


async def test_a_failed_call_marks_its_span(exported: InMemorySpanExporter) -> None:
    request = agent_execution_pb2.GetAgentExecutionRequest(id="aex-1")
    with pytest.raises(ValueError, match="secret detail"):
        await _serve(request, FakeContext(), ValueError("secret detail"))
    await _serve(request, FakeContext(grpc.StatusCode.NOT_FOUND))
    raised, aborted = exported.get_finished_spans()
    # The type only: an error's message is not the trace's to carry.
    assert (raised.status.status_code, raised.status.description) == (
        trace.StatusCode.ERROR,
        "ValueError",
    )
    assert aborted.status.description == "NOT_FOUND"
    assert aborted.attributes is not None and aborted.attributes["rpc.grpc.status_code"] == 5


async def test_a_live_view_report_is_served_without_a_span(
    exported: InMemorySpanExporter,
) -> None:
    assert await _serve(_report(content_delta="tok"), FakeContext(grpc.StatusCode.OK)) == "done"
    assert exported.get_finished_spans() == ()
