"""Who did what, as the real fleet records it: creators, updaters, each transition's actor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from temporalio.client import Client

from polyfleet.roles import Role
from polyfleet.v1 import (
    agent_execution_pb2,
    agent_execution_pb2_grpc,
    agent_pb2,
    common_pb2,
    workflow_execution_pb2,
    workflow_pb2,
)
from tests.conftest import Fleet, scripted_agent, start_fleet, stopping
from tests.integration.lifecycle.conftest import slow_agent, wait_phase

ANONYMOUS = common_pb2.Actor(subject="anonymous", via="none")
ORCHESTRATOR = common_pb2.Actor(subject="polyfleet-orchestrator", via="system")
DOCUMENT = (
    "document: {dsl: '1.0.0', namespace: t, name: w, version: '1.0.0'}\n"
    "do:\n  - one:\n      set: {a: 1}\n"
)


@pytest_asyncio.fixture
async def open_fleet(temporal_client: Client, tmp_path: Path) -> AsyncIterator[Fleet]:
    """A fleet with authentication off: every call is the anonymous caller's."""
    fleet = await start_fleet(temporal_client, tmp_path / "store", secure=False)
    async with stopping(fleet) as started:
        yield started


def _execute(message: str) -> agent_execution_pb2.ExecuteAgentRequest:
    return agent_execution_pb2.ExecuteAgentRequest(
        request=agent_execution_pb2.CreateAgentExecutionRequest(
            execution=agent_execution_pb2.AgentExecution(agent="assistant", message=message)
        )
    )


async def test_with_auth_off_the_anonymous_caller_and_the_orchestrator_are_recorded(
    open_fleet: Fleet,
) -> None:
    fleet = open_fleet
    created = await fleet.agents.CreateAgent(agent_pb2.CreateAgentRequest(agent=scripted_agent()))
    assert created.created_by == created.updated_by == ANONYMOUS
    applied = await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=scripted_agent()))
    assert (applied.version, applied.created_by, applied.updated_by) == (2, ANONYMOUS, ANONYMOUS)
    workflow = await fleet.workflows.CreateWorkflow(
        workflow_pb2.CreateWorkflowRequest(
            workflow=workflow_pb2.Workflow(name="w", document=DOCUMENT)
        )
    )
    assert workflow.created_by == workflow.updated_by == ANONYMOUS
    flow = await fleet.workflow_executions.ExecuteWorkflow(
        workflow_execution_pb2.ExecuteWorkflowRequest(
            request=workflow_execution_pb2.CreateWorkflowExecutionRequest(
                execution=workflow_execution_pb2.WorkflowExecution(workflow="w")
            )
        )
    )
    assert flow.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED
    assert flow.created_by == ANONYMOUS
    assert flow.status.transitions[-1].actor == ORCHESTRATOR

    done = await fleet.executions.ExecuteAgent(_execute("hello"))
    assert done.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED
    assert done.created_by == ANONYMOUS
    running, completed = done.status.transitions
    # The runner's report is an RPC too: with auth off its caller is anonymous.
    assert (running.to_phase, running.source, running.actor) == (
        common_pb2.EXECUTION_PHASE_RUNNING,
        "runner",
        ANONYMOUS,
    )
    # The workflow's UpdateStatus runs outside any RPC: the orchestrator's own work.
    assert (completed.to_phase, completed.source, completed.actor) == (
        common_pb2.EXECUTION_PHASE_COMPLETED,
        "orchestrator",
        ORCHESTRATOR,
    )
    # List's BASIC view keeps the identities.
    listed = await fleet.executions.ListAgentExecutions(
        agent_execution_pb2.ListAgentExecutionsRequest()
    )
    (basic,) = listed.executions
    assert basic.created_by == ANONYMOUS
    assert [t.actor for t in basic.status.transitions] == [ANONYMOUS, ORCHESTRATOR]


async def test_with_auth_on_resources_record_the_tokens_subject_and_role(fleet: Fleet) -> None:
    # The default fleet is secure; its channel carries the admin's token.
    admin = common_pb2.Actor(subject="dev-admin", role="admin", via="token")
    created = await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=scripted_agent()))
    assert created.created_by == created.updated_by == admin
    workflow = await fleet.workflows.ApplyWorkflow(
        workflow_pb2.ApplyWorkflowRequest(
            workflow=workflow_pb2.Workflow(name="w", document=DOCUMENT)
        )
    )
    assert workflow.created_by == workflow.updated_by == admin


async def test_with_auth_on_each_transition_names_its_caller_and_a_cancel_its_requester(
    fleet: Fleet,
) -> None:
    operator = common_pb2.Actor(subject="dev-operator", role="operator", via="token")
    runner = common_pb2.Actor(subject="dev-runner", role="runner", via="token")
    await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=slow_agent("slow", seconds=30)))
    channel = fleet.channel_as(Role.OPERATOR)
    try:
        stub = agent_execution_pb2_grpc.AgentExecutionServiceStub(channel)
        created = await stub.CreateAgentExecution(
            agent_execution_pb2.CreateAgentExecutionRequest(
                execution=agent_execution_pb2.AgentExecution(agent="slow", message="go")
            )
        )
        assert created.created_by == operator
        await wait_phase(fleet, created.id, (common_pb2.EXECUTION_PHASE_RUNNING,), timeout=20)
        await stub.CancelAgentExecution(
            agent_execution_pb2.CancelAgentExecutionRequest(id=created.id)
        )
    finally:
        await channel.close()
    done = await wait_phase(fleet, created.id, timeout=20)
    assert done.status.phase == common_pb2.EXECUTION_PHASE_CANCELLED
    assert done.cancel_requested_by == operator
    actors = {t.to_phase: (t.actor, t.source) for t in done.status.transitions}
    assert actors[common_pb2.EXECUTION_PHASE_RUNNING] == (runner, "runner")
    # Written by the orchestrator's workflow, done by whoever asked for it.
    assert actors[common_pb2.EXECUTION_PHASE_CANCELLED] == (operator, "orchestrator")
