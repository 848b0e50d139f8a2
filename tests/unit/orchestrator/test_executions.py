"""AgentExecutions with a real store and a Temporal client that refuses to start workflows."""

from __future__ import annotations

from typing import Any, cast

import pytest
from temporalio.client import Client

import store
from orchestrator.agent_executions import AgentExecutions
from orchestrator.errors import InvalidArgumentError, WorkflowStartError
from orchestrator.events import EventHub
from orchestrator.executions import RUNNER_SOURCE, check_report_source
from polyfleet import contract
from polyfleet.config import ExecutionSettings, TaskQueueSettings
from polyfleet.v1 import agent_execution_pb2, common_pb2
from tests.unit.orchestrator.conftest import RefusingTemporal


def _service(db: store.Store, temporal: RefusingTemporal) -> AgentExecutions:
    return AgentExecutions(
        db, cast(Client, temporal), EventHub(), TaskQueueSettings(), ExecutionSettings()
    )


def _request(agent: str = "assistant", message: str = "hello") -> Any:
    return agent_execution_pb2.CreateAgentExecutionRequest(
        execution=agent_execution_pb2.AgentExecution(agent=agent, message=message)
    )


async def test_a_failed_start_is_persisted_failed_with_the_reason(db: store.Store) -> None:
    temporal = RefusingTemporal()
    service = _service(db, temporal)
    with pytest.raises(WorkflowStartError, match="connection refused") as raised:
        await service.create(_request())
    execution = await db.agent_executions.get(raised.value.execution_id)
    assert execution.status.phase == common_pb2.EXECUTION_PHASE_FAILED
    assert execution.status.error.type == "WorkflowStartFailed"
    assert "connection refused" in execution.status.error.message
    assert any("could not be started" in m.content for m in execution.status.messages)
    # The start was attempted with the deterministic ID and the memo routing.
    (start,) = temporal.starts
    assert start["id"] == f"agent-execution/{execution.id}"
    assert start["memo"] == {"activityTaskQueue": "agent_execution_runner"}
    events = await db.agent_executions.events(execution.id)
    assert [e.phase for e in events] == [
        common_pb2.EXECUTION_PHASE_PENDING,
        common_pb2.EXECUTION_PHASE_FAILED,
    ]


async def test_invalid_requests_store_nothing(db: store.Store) -> None:
    service = _service(db, RefusingTemporal())
    with pytest.raises(InvalidArgumentError, match=r"execution\.message"):
        await service.create(_request(message=""))
    with pytest.raises(InvalidArgumentError, match=r"execution\.agent"):
        await service.create(_request(agent=""))
    with pytest.raises(store.NotFoundError, match="agent 'ghost' not found"):
        await service.create(_request(agent="ghost"))
    items, _ = await db.agent_executions.list(filters={}, page_size=10, page_token="")
    assert items == []


@pytest.mark.parametrize("phase", sorted(contract.TERMINAL_PHASES))
def test_only_a_runner_is_refused_a_terminal_phase(phase: int) -> None:
    terminal = common_pb2.ExecutionUpdate(phase=phase)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError) as raised:
        check_report_source(RUNNER_SOURCE, terminal)
    assert raised.value.field == "update.phase"
    assert contract.phase_name(phase) in raised.value.problem
    for source in ("orchestrator", "api", "reconciler"):  # the workflow and its helpers
        check_report_source(source, terminal)
    for allowed in (common_pb2.EXECUTION_PHASE_UNSPECIFIED, common_pb2.EXECUTION_PHASE_RUNNING):
        check_report_source(RUNNER_SOURCE, common_pb2.ExecutionUpdate(phase=allowed))


async def test_a_runner_report_with_a_terminal_phase_is_refused_before_the_store(
    db: store.Store,
) -> None:
    service = _service(db, RefusingTemporal())
    with pytest.raises(WorkflowStartError) as raised:
        await service.create(_request())
    execution_id = raised.value.execution_id
    before = await db.agent_executions.events(execution_id)
    with pytest.raises(InvalidArgumentError, match=r"update\.phase: COMPLETED is terminal"):
        await service.report(
            execution_id,
            "r/1",
            RUNNER_SOURCE,
            common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_COMPLETED),
        )
    assert await db.agent_executions.events(execution_id) == before
