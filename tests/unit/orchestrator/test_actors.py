"""Who did what: the caller as the Actor recorded in statuses, resources and logs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import store
from orchestrator import resources
from orchestrator.actors import actor_of, current_actor, describe
from orchestrator.agent_executions import AgentExecutions
from orchestrator.auth.caller import ANONYMOUS, ORCHESTRATOR, Caller, calling_as
from orchestrator.errors import WorkflowStartError
from orchestrator.events import EventHub
from polyfleet.config import ExecutionSettings, TaskQueueSettings
from polyfleet.roles import Role
from polyfleet.v1 import agent_execution_pb2, agent_pb2, common_pb2, workflow_pb2

ALICE = Caller("alice", Role.OPERATOR, "token")
BOB = Caller("bob", Role.ADMIN, "oidc")


class RefusingTemporal:
    """Stands in for the Temporal client: every start fails, so the API fails the execution."""

    async def start_workflow(self, *args: object, **kwargs: object) -> None:
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")


def _actor(subject: str, role: str, via: str) -> common_pb2.Actor:
    return common_pb2.Actor(subject=subject, role=role, via=via)


def test_actor_of_names_subject_role_and_via() -> None:
    assert actor_of(ALICE) == _actor("alice", "operator", "token")
    # No role when authentication is off, nor for the orchestrator's own work.
    assert actor_of(ANONYMOUS) == _actor("anonymous", "", "none")
    assert actor_of(ORCHESTRATOR) == _actor("polyfleet-orchestrator", "", "system")


def test_the_current_actor_is_the_caller_inside_an_rpc_and_the_orchestrator_outside() -> None:
    assert current_actor() == actor_of(ORCHESTRATOR)
    with calling_as(ALICE):
        assert current_actor() == actor_of(ALICE)
    assert current_actor() == actor_of(ORCHESTRATOR)


def test_describe_names_the_role_or_else_how_the_caller_was_identified() -> None:
    assert describe(actor_of(ALICE)) == "alice (operator)"
    assert describe(actor_of(ANONYMOUS)) == "anonymous (none)"
    assert describe(actor_of(ORCHESTRATOR)) == "polyfleet-orchestrator (system)"
    assert describe(common_pb2.Actor()) == "unknown"


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[store.Store]:
    opened = store.Store.open(tmp_path / "store")
    yield opened
    opened.close()


def _agent(
    name: str = "assistant",
    created_by: common_pb2.Actor | None = None,
    updated_by: common_pb2.Actor | None = None,
) -> agent_pb2.Agent:
    return agent_pb2.Agent(
        name=name,
        model=agent_pb2.ModelConfig(
            provider="scripted", scripted=agent_pb2.ScriptedModel(default_reply="hi")
        ),
        created_by=created_by,
        updated_by=updated_by,
    )


async def test_agents_record_their_creator_and_last_updater(
    db: store.Store, caplog: pytest.LogCaptureFixture
) -> None:
    agents = resources.agents(db)
    caplog.set_level(logging.INFO, logger="orchestrator.resources")
    forged = _actor("mallory", "admin", "token")
    with calling_as(ALICE):
        created = await agents.create(_agent(created_by=forged, updated_by=forged))
    assert created.created_by == created.updated_by == actor_of(ALICE)
    with calling_as(BOB):
        updated = await agents.update(_agent(created_by=forged))
    assert updated.created_by == actor_of(ALICE)
    assert updated.updated_by == actor_of(BOB)
    with calling_as(ANONYMOUS):
        applied = await agents.apply(_agent())
        fresh = await agents.apply(_agent("helper"))
    assert applied.created_by == actor_of(ALICE)
    assert applied.updated_by == actor_of(ANONYMOUS)
    assert fresh.created_by == fresh.updated_by == actor_of(ANONYMOUS)
    assert (await db.agents.get("assistant")).created_by == actor_of(ALICE)
    with calling_as(BOB):
        await agents.delete("helper")
    lines = [r.getMessage() for r in caplog.records if r.name == "orchestrator.resources"]
    assert lines == [
        f"agent 'assistant' ({created.id}) created by alice (operator), version 1",
        f"agent 'assistant' ({created.id}) updated by bob (admin), version 2",
        f"agent 'assistant' ({created.id}) replaced (apply) by anonymous (none), version 3",
        f"agent 'helper' ({fresh.id}) created (apply) by anonymous (none), version 1",
        "agent 'helper' deleted by bob (admin)",
    ]


async def test_workflows_record_their_creator_and_last_updater(db: store.Store) -> None:
    workflows = resources.workflows(db)
    document = (
        "document: {dsl: '1.0.0', namespace: t, name: w, version: '1.0.0'}\n"
        "do:\n  - one:\n      set: {a: 1}\n"
    )
    with calling_as(ALICE):
        created = await workflows.create(workflow_pb2.Workflow(name="w", document=document))
    updated = await workflows.update(workflow_pb2.Workflow(name="w", document=document))
    assert created.created_by == updated.created_by == actor_of(ALICE)
    assert updated.updated_by == actor_of(ORCHESTRATOR)


async def test_an_execution_records_who_created_it_and_who_changed_its_phase(
    db: store.Store, caplog: pytest.LogCaptureFixture
) -> None:
    await db.agents.create(_agent())
    service = AgentExecutions(
        db,
        cast(Client, RefusingTemporal()),
        EventHub(),
        TaskQueueSettings(),
        ExecutionSettings(),
    )
    caplog.set_level(logging.INFO, logger="orchestrator.executions")
    request = agent_execution_pb2.CreateAgentExecutionRequest(
        execution=agent_execution_pb2.AgentExecution(
            agent="assistant", message="hello", created_by=_actor("mallory", "admin", "token")
        )
    )
    with calling_as(ALICE), pytest.raises(WorkflowStartError) as raised:
        await service.create(request)
    execution = await db.agent_executions.get(raised.value.execution_id)
    assert execution.created_by == actor_of(ALICE)
    (failed,) = execution.status.transitions
    assert failed.to_phase == common_pb2.EXECUTION_PHASE_FAILED
    assert (failed.source, failed.actor) == ("api", actor_of(ALICE))
    lines = [r.getMessage() for r in caplog.records if r.name == "orchestrator.executions"]
    assert f"created {execution.id} by alice (operator)" in lines
    assert f"execution {execution.id} phase PENDING -> FAILED by alice (operator) via api" in lines
