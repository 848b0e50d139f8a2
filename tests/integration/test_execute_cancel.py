"""Synchronous Execute and Cancel over the real API, workflow and runner."""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.client import WorkflowExecutionStatus

from polyfleet.error_details import DOMAIN, EXECUTION_ID, error_info, field_violations
from polyfleet.v1 import agent_execution_pb2, agent_pb2, common_pb2
from tests.conftest import Fleet, scripted_agent
from tests.helpers import assert_eventually, workflow_closes_as


def _slow_agent(name: str = "slow") -> agent_pb2.Agent:
    agent = scripted_agent(name=name)
    agent.model.scripted.default_reply = "one two three four five six seven eight nine ten"
    agent.model.scripted.chunk_words = 1
    agent.model.scripted.chunk_delay_ms = 400  # ~4 s of streaming
    return agent


def _execute_request(
    agent: str, message: str, seconds: float | None = None
) -> agent_execution_pb2.ExecuteAgentRequest:
    request = agent_execution_pb2.ExecuteAgentRequest(
        request=agent_execution_pb2.CreateAgentExecutionRequest(
            execution=agent_execution_pb2.AgentExecution(agent=agent, message=message)
        )
    )
    if seconds is not None:
        request.timeout.CopyFrom(Duration(seconds=int(seconds), nanos=int(seconds % 1 * 1e9)))
    return request


async def _get(fleet: Fleet, execution_id: str) -> agent_execution_pb2.AgentExecution:
    return await fleet.executions.GetAgentExecution(
        agent_execution_pb2.GetAgentExecutionRequest(id=execution_id)
    )


async def test_execute_returns_the_final_content(fleet: Fleet) -> None:
    await fleet.agents.ApplyAgent(
        agent_pb2.ApplyAgentRequest(agent=scripted_agent(**{"ping": "pong and more"}))
    )
    done = await fleet.executions.ExecuteAgent(_execute_request("assistant", "ping"))
    assert done.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED
    assert done.status.output_text == "pong and more"
    assert done.status.messages[-1].content == "pong and more"


async def test_execute_deadline_names_the_execution_which_then_completes(fleet: Fleet) -> None:
    await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=_slow_agent()))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await fleet.executions.ExecuteAgent(_execute_request("slow", "take your time", 1))
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    details = raised.value.details() or ""
    listed = await fleet.executions.ListAgentExecutions(
        agent_execution_pb2.ListAgentExecutionsRequest(agent="slow")
    )
    (execution,) = listed.executions
    assert execution.id in details
    # ... and names it as data, so clients never parse the message.
    info = error_info(raised.value)
    assert info is not None
    assert (info.domain, info.reason) == (DOMAIN, "EXECUTION_DEADLINE")
    assert info.metadata[EXECUTION_ID] == execution.id
    done = await assert_eventually(
        lambda: _get(fleet, execution.id),
        lambda e: e.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED,
        timeout=30,
    )
    assert done.status.output_text.startswith("one two")


async def test_execute_rejects_a_timeout_over_the_limit(fleet: Fleet) -> None:
    await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=scripted_agent()))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await fleet.executions.ExecuteAgent(_execute_request("assistant", "hi", 301))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "timeout" in (raised.value.details() or "")
    assert [v.field for v in field_violations(raised.value)] == ["timeout"]


async def test_cancel_mid_run_ends_cancelled_within_seconds(fleet: Fleet) -> None:
    await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=_slow_agent()))
    created = await fleet.executions.CreateAgentExecution(
        agent_execution_pb2.CreateAgentExecutionRequest(
            execution=agent_execution_pb2.AgentExecution(agent="slow", message="go")
        )
    )
    await assert_eventually(
        lambda: _get(fleet, created.id),
        lambda e: e.status.phase == common_pb2.EXECUTION_PHASE_RUNNING,
        timeout=20,
    )
    started = time.monotonic()
    await fleet.executions.CancelAgentExecution(
        agent_execution_pb2.CancelAgentExecutionRequest(id=created.id)
    )
    done = await assert_eventually(
        lambda: _get(fleet, created.id),
        lambda e: e.status.phase == common_pb2.EXECUTION_PHASE_CANCELLED,
        timeout=10,
    )
    assert time.monotonic() - started < 5
    assert done.status.output_text == ""  # the reply never finished
    await workflow_closes_as(fleet.temporal, created.workflow_id, WorkflowExecutionStatus.CANCELED)
    # Cancelling again is harmless and returns the terminal execution.
    again = await fleet.executions.CancelAgentExecution(
        agent_execution_pb2.CancelAgentExecutionRequest(id=created.id)
    )
    assert again.status.phase == common_pb2.EXECUTION_PHASE_CANCELLED
