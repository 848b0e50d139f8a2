"""FleetStatus over a real store, with a fake clock and a fake Temporal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import PollerInfo, TaskQueueStats
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, DescribeTaskQueueResponse
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import store
from orchestrator.errors import InvalidArgumentError
from orchestrator.fleet_status import MAX_STUCK_IDS, FleetStatus
from polyfleet.config import TaskQueueSettings
from polyfleet.v1 import (
    agent_execution_pb2,
    agent_pb2,
    common_pb2,
    fleet_pb2,
    workflow_execution_pb2,
)

RUNNING = common_pb2.EXECUTION_PHASE_RUNNING
PENDING = common_pb2.EXECUTION_PHASE_PENDING
HOUR = 3600 * 10**9


class _Service:
    def __init__(self) -> None:
        self.requests: list[DescribeTaskQueueRequest] = []

    async def describe_task_queue(
        self, request: DescribeTaskQueueRequest, **_: Any
    ) -> DescribeTaskQueueResponse:
        self.requests.append(request)
        if request.task_queue.name == "down":
            raise RPCError("no such luck", RPCStatusCode.UNAVAILABLE, b"")
        response = DescribeTaskQueueResponse(
            stats=TaskQueueStats(approximate_backlog_count=len(request.task_queue.name))
        )
        if request.task_queue_type == TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY:
            response.pollers.append(PollerInfo(identity=f"runner@{request.task_queue.name}"))
        return response


class _Temporal:
    namespace = "default"

    def __init__(self) -> None:
        self.workflow_service = _Service()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[store.Store]:
    with store.Store.open(tmp_path / "store") as opened:
        yield opened


def _status(db: store.Store, offset: int = 0) -> tuple[FleetStatus, _Temporal]:
    temporal = _Temporal()
    status = FleetStatus(
        db,
        cast(Client, temporal),
        TaskQueueSettings(),
        timedelta(minutes=10),
        clock=lambda: time.time_ns() + offset,
    )
    return status, temporal


async def _agent_execution(
    db: store.Store, phase: common_pb2.ExecutionPhase.ValueType, queue: str = ""
) -> str:
    execution = agent_execution_pb2.AgentExecution(
        agent="a",
        runner_queue=queue,
        status=agent_execution_pb2.AgentExecutionStatus(phase=phase),
    )
    return (await db.agent_executions.create(execution)).id


async def test_running_executions_silent_past_the_threshold_are_stuck(db: store.Store) -> None:
    running = [await _agent_execution(db, RUNNING) for _ in range(MAX_STUCK_IDS + 2)]
    await _agent_execution(db, PENDING)
    await db.workflow_executions.create(
        workflow_execution_pb2.WorkflowExecution(
            workflow="w", status=workflow_execution_pb2.WorkflowExecutionStatus(phase=RUNNING)
        )
    )

    fresh, _ = _status(db)
    assert (await fresh.get()).stuck.count == 0

    # An hour later, nothing has reported: the default threshold (10 minutes) is passed.
    later, _ = _status(db, offset=HOUR)
    result = await later.get()
    assert result.stuck.count == len(running) + 1
    assert result.stuck.examined == len(running) + 1
    assert result.stuck.stuck_after.ToTimedelta() == timedelta(minutes=10)
    assert len(result.stuck.execution_ids) == MAX_STUCK_IDS
    # Longest silent first: the first created.
    assert result.stuck.execution_ids[0] == running[0]

    # The request's threshold wins over the default.
    relaxed = await later.get(Duration(seconds=2 * 3600))
    assert relaxed.stuck.count == 0

    counts = {c.phase: c.count for c in result.agent_executions}
    assert counts[RUNNING] == len(running)
    assert counts[PENDING] == 1
    assert {c.phase: c.count for c in result.workflow_executions}[RUNNING] == 1


async def test_queues_in_use_are_described_for_both_task_types(db: store.Store) -> None:
    await db.agents.create(agent_pb2.Agent(name="moved", runner_queue="gpu"))
    await _agent_execution(db, PENDING, queue="old-queue")
    await _agent_execution(db, RUNNING, queue="down")
    status, temporal = _status(db)

    result = await status.get()

    names = [q.name for q in result.queues]
    assert names == [
        "agent_execution_orchestrator",
        "workflow_execution_orchestrator",
        "agent_execution_runner",
        "down",
        "gpu",
        "old-queue",
        "workflow_execution_runner",
    ]
    by_name = {q.name: q for q in result.queues}
    assert by_name["gpu"].used_by == ["agent/moved"]
    assert by_name["old-queue"].used_by == ["executions"]
    assert by_name["agent_execution_orchestrator"].role == fleet_pb2.TASK_QUEUE_ROLE_ORCHESTRATOR
    gpu = by_name["gpu"]
    assert gpu.activity_tasks.backlog_count == 3
    assert [p.identity for p in gpu.activity_tasks.pollers] == ["runner@gpu"]
    assert not gpu.workflow_tasks.pollers
    assert by_name["down"].error == "UNAVAILABLE: no such luck"
    assert all(r.report_stats for r in temporal.workflow_service.requests)
    assert len(temporal.workflow_service.requests) == 2 * len(names)


async def test_negative_threshold_names_the_field(db: store.Store) -> None:
    status, _ = _status(db)
    with pytest.raises(InvalidArgumentError) as info:
        await status.get(Duration(seconds=-1))
    assert info.value.field == "stuck_after"
