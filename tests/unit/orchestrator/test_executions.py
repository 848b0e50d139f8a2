"""AgentExecutions with a real store and a Temporal client that refuses to start workflows."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from temporalio.client import Client

import store
from orchestrator.agent_executions import AgentExecutions
from orchestrator.errors import ExecutionDeadlineError, InvalidArgumentError, WorkflowStartError
from orchestrator.events import EventHub
from orchestrator.executions import RUNNER_SOURCE, check_report_source
from polyfleet import contract
from polyfleet.config import ExecutionSettings, TaskQueueSettings
from polyfleet.v1 import agent_execution_pb2, common_pb2
from tests.helpers import assert_eventually
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


async def test_a_waiting_execute_is_handed_the_execution_by_its_terminal_report(
    db: store.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _service(db, RefusingTemporal())
    request = _request()
    execution = service._new_execution(request, "assistant", "", "", "")
    await service.persist_and_start(execution, common_pb2.ExecutionUpdate(), start=False)
    reads = 0
    real_get = service.get

    async def counting_get(execution_id: str, *args: Any) -> Any:
        nonlocal reads
        reads += 1
        return await real_get(execution_id, *args)

    monkeypatch.setattr(service, "get", counting_get)
    waiting = asyncio.create_task(service.wait_terminal(execution.id, 30))

    async def reads_so_far() -> int:
        return reads

    await assert_eventually(reads_so_far, lambda n: n == 1)
    running = common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_RUNNING)
    await service.report(execution.id, "r1", RUNNER_SOURCE, running)
    answer = common_pb2.ExecutionUpdate(
        output_text="the answer",
        messages=[
            common_pb2.Message(
                id="m1", role=common_pb2.MESSAGE_ROLE_ASSISTANT, content="the answer"
            )
        ],
    )
    await service.report(execution.id, "r2", RUNNER_SOURCE, answer)
    done = common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_COMPLETED)
    await service.report(execution.id, "done", "orchestrator", done)
    # Handed over by the terminal report, well before the store's safety-net re-read, and
    # as a read returns it: the final answer is the last message's content again.
    finished = await asyncio.wait_for(waiting, 2)
    assert finished.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED
    assert finished == await real_get(execution.id)
    assert finished.status.messages[-1].content == "the answer"
    assert reads == 1
    assert service._terminal_waiters == {}


async def test_execute_waits_no_longer_than_asked(db: store.Store) -> None:
    service = _service(db, RefusingTemporal())
    execution = service._new_execution(_request(), "assistant", "", "", "")
    await service.persist_and_start(execution, common_pb2.ExecutionUpdate(), start=False)
    with pytest.raises(ExecutionDeadlineError):
        await service.wait_terminal(execution.id, 0.05)
    assert service._terminal_waiters == {}
