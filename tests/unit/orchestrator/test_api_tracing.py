"""Which API calls get a server span: every call but live-view-only progress reports."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.struct_pb2 import Struct, Value

from orchestrator.servicers.tracing import worth_a_span
from polyfleet.v1 import agent_execution_pb2, common_pb2, runner_pb2


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
