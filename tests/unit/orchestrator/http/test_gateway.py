"""The gateway's translations: gRPC errors to problem+json, stream messages to SSE."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from orchestrator.errors import ExecutionDeadlineError, InvalidArgumentError, UnauthenticatedError
from orchestrator.http.gateway import rpc_problem, sse_message
from orchestrator.servicers.errors import error_status
from polyfleet.error_details import HTTP_STATUS
from polyfleet.v1 import agent_execution_pb2, common_pb2, fleet_pb2


def _as_call_error(err: Exception) -> grpc.aio.AioRpcError:
    """``err`` as a client sees it: the API's status with its rich details trailer."""
    status = error_status(err)
    return grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        details=status.details,
    )


def _body(response: Any) -> dict[str, Any]:
    assert response.media_type == "application/problem+json"
    parsed: dict[str, Any] = json.loads(bytes(response.body))
    return parsed


def test_every_grpc_code_has_an_http_status() -> None:
    assert set(HTTP_STATUS) == set(grpc.StatusCode)
    assert HTTP_STATUS[grpc.StatusCode.FAILED_PRECONDITION] == 400
    assert HTTP_STATUS[grpc.StatusCode.ABORTED] == 409
    assert HTTP_STATUS[grpc.StatusCode.CANCELLED] == 499


def test_an_invalid_argument_names_its_field() -> None:
    response = rpc_problem(_as_call_error(InvalidArgumentError("timeout", "must be at most 300 s")))
    body = _body(response)
    assert response.status_code == 400
    assert body["code"] == "INVALID_ARGUMENT"
    assert body["title"] == "Bad Request"
    assert body["fieldViolations"] == [{"field": "timeout", "description": "must be at most 300 s"}]
    assert "executionId" not in body


def test_a_deadline_is_504_naming_the_execution() -> None:
    response = rpc_problem(_as_call_error(ExecutionDeadlineError("ae-123", 0.2)))
    body = _body(response)
    assert response.status_code == 504
    assert body["executionId"] == "ae-123"
    assert "still running" in body["detail"]


def test_unauthenticated_asks_for_a_bearer_token() -> None:
    response = rpc_problem(_as_call_error(UnauthenticatedError("no token")))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_client_side_error_without_details_still_maps() -> None:
    err = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details="down"
    )
    body = _body(rpc_problem(err))
    assert (body["status"], body["code"], body["detail"]) == (503, "UNAVAILABLE", "down")


def _parse(message: str) -> dict[str, str]:
    assert message.endswith("\n\n")
    return dict(line.split(": ", 1) for line in message.strip("\n").split("\n"))


def test_a_snapshot_is_sent_with_its_last_sequence_as_id() -> None:
    snapshot = agent_execution_pb2.AgentExecution(
        id="ae-1", status=agent_execution_pb2.AgentExecutionStatus(last_sequence=7)
    )
    fields = _parse(sse_message(agent_execution_pb2.WatchAgentExecutionResponse(snapshot=snapshot)))
    assert fields["id"] == "7"
    assert fields["event"] == "snapshot"
    assert json.loads(fields["data"])["id"] == "ae-1"


@pytest.mark.parametrize("content", ["plain", "two\nlines\n\nand a blank one"])
def test_an_event_is_one_data_line_whatever_its_content(content: str) -> None:
    event = common_pb2.ExecutionEvent(
        sequence=8, update=common_pb2.ExecutionUpdate(content_delta=content)
    )
    fields = _parse(sse_message(agent_execution_pb2.WatchAgentExecutionResponse(event=event)))
    assert (fields["id"], fields["event"]) == ("8", "event")
    assert json.loads(fields["data"])["update"]["contentDelta"] == content


def test_a_change_is_sent_as_a_change_event() -> None:
    change = fleet_pb2.ExecutionChange(
        sequence=42,
        type=fleet_pb2.EXECUTION_CHANGE_TYPE_CREATED,
        agent_execution=agent_execution_pb2.AgentExecution(id="ae-2"),
    )
    fields = _parse(sse_message(change))
    assert (fields["id"], fields["event"]) == ("42", "change")
    data = json.loads(fields["data"])
    assert data["type"] == "EXECUTION_CHANGE_TYPE_CREATED"
    assert data["agentExecution"]["id"] == "ae-2"
