"""RunnerService's child agent executions: what a workflow's `call: agent` runs through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from temporalio.client import Client

from polyfleet.error_details import field_violations
from polyfleet.v1 import (
    agent_execution_pb2,
    agent_pb2,
    common_pb2,
    runner_pb2,
    runner_pb2_grpc,
    workflow_execution_pb2,
)
from tests.conftest import Fleet, scripted_agent, start_fleet, stopping
from tests.integration.workflows.conftest import apply_workflow, finish, start

PENDING = common_pb2.EXECUTION_PHASE_PENDING
CANCELLED = common_pb2.EXECUTION_PHASE_CANCELLED


@pytest_asyncio.fixture
async def idle(temporal_client: Client, tmp_path: Path) -> AsyncIterator[Fleet]:
    """A fleet without a runner: its executions stay PENDING until cancelled.

    Without credentials: this file tests what RunnerService does with a call, not who may
    make it (tests/integration/test_authz.py and the runner binding tests do).
    """
    fleet = await start_fleet(temporal_client, tmp_path, with_runner=False, secure=False)
    async with stopping(fleet):
        await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=scripted_agent()))
        await apply_workflow(fleet, "asks", "do:\n  - ask:\n      wait: PT1H\n")
        yield fleet


def runner_service(fleet: Fleet) -> runner_pb2_grpc.RunnerServiceAsyncStub:
    return runner_pb2_grpc.RunnerServiceStub(fleet.channel)


async def create_child(
    fleet: Fleet, parent_id: str, request_id: str = "", task_id: str = "/do/0/ask"
) -> agent_execution_pb2.AgentExecution:
    return await runner_service(fleet).CreateChildAgentExecution(
        runner_pb2.CreateChildAgentExecutionRequest(
            execution_id=parent_id,
            task_id=task_id,
            agent="assistant",
            message="hello",
            request_id=request_id,
        )
    )


async def test_child_carries_the_parent_labels_the_orchestrator_sets(idle: Fleet) -> None:
    parent = await start(idle, "asks")
    child = await create_child(idle, parent.id, "attempt-1")
    assert dict(child.labels) == {
        "polyfleet.parent-execution": parent.id,
        "polyfleet.parent-task": "do.0.ask",
    }
    assert child.status.phase == PENDING
    # A retried activity attempt gets the same child; another request ID a new one.
    assert (await create_child(idle, parent.id, "attempt-1")).id == child.id
    assert (await create_child(idle, parent.id, "attempt-2")).id != child.id
    # The same request ID under another parent is another child.
    other = await start(idle, "asks")
    assert (await create_child(idle, other.id, "attempt-1")).id != child.id


async def test_watch_and_cancel_of_another_parents_child_are_not_found(idle: Fleet) -> None:
    parent = await start(idle, "asks")
    other = await start(idle, "asks")
    child = await create_child(idle, parent.id)
    runner = runner_service(idle)
    watch = runner_pb2.WatchChildAgentExecutionRequest(
        execution_id=other.id, child_execution_id=child.id
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in runner.WatchChildAgentExecution(watch):
            pass
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    cancel = runner_pb2.CancelChildAgentExecutionRequest(
        execution_id=other.id, child_execution_id=child.id
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await runner.CancelChildAgentExecution(cancel)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    # An agent execution created through the public API has no parent at all.
    public = await idle.executions.CreateAgentExecution(
        agent_execution_pb2.CreateAgentExecutionRequest(
            execution=agent_execution_pb2.AgentExecution(agent="assistant", message="hi")
        )
    )
    cancel.child_execution_id = public.id
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await runner.CancelChildAgentExecution(cancel)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    # Neither was cancelled; the parent itself watches and cancels its child.
    got = await idle.executions.GetAgentExecution(
        agent_execution_pb2.GetAgentExecutionRequest(id=child.id)
    )
    assert got.status.phase == PENDING
    watch.execution_id = parent.id
    stream = runner.WatchChildAgentExecution(watch)
    first = await stream.read()
    stream.cancel()
    assert isinstance(first, agent_execution_pb2.WatchAgentExecutionResponse)
    assert first.snapshot.id == child.id
    cancel.execution_id, cancel.child_execution_id = parent.id, child.id
    await runner.CancelChildAgentExecution(cancel)
    ended = await idle.client.agent_executions.wait(child.id, 60)
    assert ended.status.phase == CANCELLED


async def test_create_under_a_terminal_or_agent_parent_is_refused(idle: Fleet) -> None:
    parent = await start(idle, "asks")
    await idle.workflow_executions.CancelWorkflowExecution(
        workflow_execution_pb2.CancelWorkflowExecutionRequest(id=parent.id)
    )
    assert (await finish(idle, parent.id)).status.phase == CANCELLED
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create_child(idle, parent.id, "attempt-1")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "CANCELLED" in (refused.value.details() or "")
    agent_parent = await create_child(idle, (await start(idle, "asks")).id)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create_child(idle, agent_parent.id)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create_child(idle, parent.id, task_id="")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in field_violations(refused.value)] == ["task_id"]
