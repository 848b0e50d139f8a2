"""Runner pools: an agent's or workflow's ``runner_queue`` routes its executions' activities.

One runner polls two agent queues and two workflow queues (POLYFLEET_RUNNER_AGENT_QUEUES,
_WORKFLOW_QUEUES): the default ones and a pool's. Where each activity ran is read from the
workflow history's ActivityTaskScheduled events, as Temporal routed it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from polyfleet import contract
from polyfleet.config import RunnerSettings
from polyfleet.error_details import field_violations
from polyfleet.v1 import agent_pb2, common_pb2, workflow_pb2
from tests.conftest import Fleet, scripted_agent, start_fleet, stopping, unique_queues
from tests.helpers import create_agent_execution, wait_terminal
from tests.integration.workflows.conftest import document, finish, start, tasks

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED


class Pools:
    def __init__(self, fleet: Fleet, agent_pool: str, workflow_pool: str) -> None:
        self.fleet = fleet
        self.agent_pool = agent_pool
        self.workflow_pool = workflow_pool


@pytest_asyncio.fixture
async def pools(temporal_client: Client, tmp_path: Path) -> AsyncIterator[Pools]:
    """A fleet whose one runner polls the default queues and a pool queue of each kind."""
    queues = unique_queues()
    suffix = uuid.uuid4().hex[:10]
    agent_pool, workflow_pool = f"gpu-runners.{suffix}", f"tenant-a/workflows:{suffix}"
    runner = RunnerSettings(
        heartbeat_interval=timedelta(seconds=1),
        agent_queues=[queues.agent_execution_runner_task_queue, agent_pool],
        workflow_queues=[queues.workflow_execution_runner_task_queue, workflow_pool],
    )
    fleet = await start_fleet(temporal_client, tmp_path, queues=queues, runner=runner)
    async with stopping(fleet):
        yield Pools(fleet, agent_pool, workflow_pool)


async def _scheduled(fleet: Fleet, workflow_id: str) -> list[tuple[str, str]]:
    """(activity, task queue) of each ActivityTaskScheduled event of a workflow."""
    history = await fleet.temporal.get_workflow_handle(workflow_id).fetch_history()
    return [
        (
            e.activity_task_scheduled_event_attributes.activity_type.name,
            e.activity_task_scheduled_event_attributes.task_queue.name,
        )
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def _memo_queue(fleet: Fleet, workflow_id: str) -> object:
    description = await fleet.temporal.get_workflow_handle(workflow_id).describe()
    return (await description.memo()).get(contract.MEMO_ACTIVITY_TASK_QUEUE)


async def test_one_runner_polls_every_listed_queue(pools: Pools) -> None:
    fleet = pools.fleet
    assert fleet.runner is not None
    polled = {w.config()["task_queue"] for w in fleet.runner.workers}
    assert polled == {
        fleet.queues.agent_execution_runner_task_queue,
        pools.agent_pool,
        fleet.queues.workflow_execution_runner_task_queue,
        pools.workflow_pool,
    }


async def test_an_agents_runner_queue_routes_its_activities_there_only(pools: Pools) -> None:
    fleet = pools.fleet
    gpu = scripted_agent("gpu")
    gpu.runner_queue = pools.agent_pool
    applied = await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=gpu))
    assert applied.runner_queue == pools.agent_pool
    await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=scripted_agent()))

    first = await create_agent_execution(fleet, "gpu", "first")
    # Enqueued behind the first in its session: started later, by the dequeue, on the pool.
    second = await create_agent_execution(fleet, "gpu", "second", session_id=first.session_id)
    plain = await create_agent_execution(fleet, "assistant", "plain")
    default = fleet.queues.agent_execution_runner_task_queue
    for created, queue in ((first, pools.agent_pool), (second, pools.agent_pool), (plain, default)):
        done = await wait_terminal(fleet.client.agent_executions, created.id)
        assert done.status.phase == COMPLETED, done.status.error
        assert done.runner_queue == queue
        assert await _memo_queue(fleet, done.workflow_id) == queue
        assert await _scheduled(fleet, done.workflow_id) == [
            (contract.ENSURE_THREAD, queue),
            (contract.EXECUTE_GRAPHTON, queue),
        ]


async def test_a_workflows_runner_queue_routes_it_and_its_child_agents_use_their_own(
    pools: Pools,
) -> None:
    fleet = pools.fleet
    gpu = scripted_agent("gpu")
    gpu.runner_queue = pools.agent_pool
    await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=gpu))
    body = "do:\n  - ask:\n      call: agent\n      with: {agent: gpu, message: hi}\n"
    pooled = workflow_pb2.Workflow(
        name="pooled", document=document("pooled", body), runner_queue=pools.workflow_pool
    )
    applied = await fleet.workflows.ApplyWorkflow(
        workflow_pb2.ApplyWorkflowRequest(workflow=pooled)
    )
    assert applied.runner_queue == pools.workflow_pool
    plain = workflow_pb2.Workflow(
        name="plain", document=document("plain", "do:\n  - one:\n      set: {a: 1}\n")
    )
    await fleet.workflows.ApplyWorkflow(workflow_pb2.ApplyWorkflowRequest(workflow=plain))

    default = fleet.queues.workflow_execution_runner_task_queue
    for name, queue in (("pooled", pools.workflow_pool), ("plain", default)):
        done = await finish(fleet, (await start(fleet, name)).id)
        assert done.status.phase == COMPLETED, done.status.error
        assert done.runner_queue == queue
        assert await _memo_queue(fleet, done.workflow_id) == queue
        assert await _scheduled(fleet, done.workflow_id) == [(contract.EXECUTE_WORKFLOW, queue)]
        if name == "pooled":
            child_id = tasks(done)["/do/0/ask"].agent_execution_id
            child = await wait_terminal(fleet.client.agent_executions, child_id)
            assert child.runner_queue == pools.agent_pool
            assert {q for _, q in await _scheduled(fleet, child.workflow_id)} == {pools.agent_pool}


BAD_QUEUES = [
    ("gpu runners", "must be letters"),
    ("gpu\trunners", "must be letters"),
    ("-gpu", "must be letters"),
    ("é", "must be letters"),
    ("q" * (contract.MAX_TASK_QUEUE_CHARS + 1), "the limit is 200"),
]


@pytest.mark.parametrize(("queue", "says"), BAD_QUEUES, ids=["space", "tab", "dash", "é", "long"])
async def test_a_bad_runner_queue_is_invalid_argument_naming_the_field(
    pools: Pools, queue: str, says: str
) -> None:
    fleet = pools.fleet
    agent = scripted_agent("gpu")
    agent.runner_queue = queue
    workflow = workflow_pb2.Workflow(
        name="pooled", document=document("pooled", "do:\n  - one:\n      set: {a: 1}\n")
    )
    workflow.runner_queue = queue
    calls: list[tuple[Awaitable[object], str]] = [
        (fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=agent)), "agent"),
        (fleet.agents.CreateAgent(agent_pb2.CreateAgentRequest(agent=agent)), "agent"),
        (
            fleet.workflows.ApplyWorkflow(workflow_pb2.ApplyWorkflowRequest(workflow=workflow)),
            "workflow",
        ),
        (
            fleet.workflows.CreateWorkflow(workflow_pb2.CreateWorkflowRequest(workflow=workflow)),
            "workflow",
        ),
    ]
    for call, kind in calls:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        err = refused.value
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in field_violations(err)] == [f"{kind}.runner_queue"]
        assert says in (err.details() or "")
