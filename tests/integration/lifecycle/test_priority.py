"""Priorities: a saturated runner pool serves urgent executions first.

What Temporal guarantees: each partition of a task queue dispatches its backlog in priority
order (1 first). A queue has several partitions (four on the dev server and by default on a
cluster) and tasks land on them at random, so across a whole queue the order is only close
to priority order, and a task that is not in the backlog yet (its workflow task is still
running) cannot be preferred to tasks that are. The ordering test therefore runs on a dev
server with one partition per queue and lets every backlog task reach the backlog before the
runner polls; then the order it asserts is exact.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from temporalio.client import Client

from polyfleet.config import RunnerSettings
from polyfleet.v1 import agent_execution_pb2, common_pb2
from tests.conftest import Fleet, add_runner, start_fleet, start_temporal, stop_fleet
from tests.helpers import assert_eventually
from tests.integration.lifecycle.conftest import apply, create, request, slow_agent, wait_phase


@pytest_asyncio.fixture(scope="module")
async def one_partition_temporal() -> AsyncIterator[Client]:
    """A dev server whose task queues have a single partition each."""
    env = await start_temporal(
        "matching.numTaskqueueReadPartitions=1", "matching.numTaskqueueWritePartitions=1"
    )
    try:
        yield env.client
    finally:
        await env.shutdown()


async def pending_activities(fleet: Fleet, workflow_id: str) -> list[str]:
    described = await fleet.temporal.get_workflow_handle(workflow_id).describe()
    return [a.activity_type.name for a in described.raw_description.pending_activities]


async def activity_starts(fleet: Fleet, workflow_id: str) -> dict[str, datetime]:
    """When each activity of the workflow was handed to a runner, by activity name."""
    history = await fleet.temporal.get_workflow_handle(workflow_id).fetch_history()
    names: dict[int, str] = {}
    starts: dict[str, datetime] = {}
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            names[event.event_id] = (
                event.activity_task_scheduled_event_attributes.activity_type.name
            )
        elif event.HasField("activity_task_started_event_attributes"):
            scheduled = event.activity_task_started_event_attributes.scheduled_event_id
            starts.setdefault(names[scheduled], event.event_time.ToDatetime())
    return starts


async def test_priority_one_created_last_starts_before_the_backlog(
    one_partition_temporal: Client, tmp_path: Path
) -> None:
    fleet = await start_fleet(one_partition_temporal, tmp_path, with_runner=False)
    try:
        await apply(fleet, slow_agent(seconds=1.0))
        backlog = [await create(fleet, request("slow", f"bulk {i}", priority=5)) for i in range(6)]
        urgent = await create(fleet, request("slow", "urgent", priority=1))
        assert urgent.priority == 1 and backlog[0].priority == 5
        # Every first activity waits in the runner queue's backlog before any runner polls.
        for execution in (*backlog, urgent):
            await assert_eventually(
                functools.partial(pending_activities, fleet, execution.workflow_id),
                lambda pending: pending == ["EnsureThread"],
                message=f"{execution.id} has not scheduled EnsureThread",
            )
        # A runner pool that can take one activity at a time: saturated from its first poll.
        await add_runner(
            fleet,
            RunnerSettings(max_concurrent_activities=1, heartbeat_interval=timedelta(seconds=1)),
        )
        done = [await wait_phase(fleet, e.id, timeout=120) for e in (*backlog, urgent)]
        assert all(e.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED for e in done)

        # Exact: of seven tasks in one backlog, the priority-1 one is dispatched first
        # (FIFO, without priorities, would dispatch it last).
        starts = {e.id: await activity_starts(fleet, e.workflow_id) for e in done}
        first = min(done, key=lambda e: starts[e.id]["EnsureThread"])
        assert first.id == urgent.id, {i: s["EnsureThread"] for i, s in starts.items()}

        # Its second activity (ExecuteGraphton, when the phase becomes RUNNING) is scheduled
        # only after its workflow task; meanwhile the runner may take backlog EnsureThreads,
        # and once those are gone, one backlog ExecuteGraphton (about 1 s) at most.
        urgent_start = done[-1].status.start_time.ToNanoseconds()
        started_before = [
            e.id for e in done[:-1] if e.status.start_time.ToNanoseconds() < urgent_start
        ]
        assert len(started_before) <= 1, (started_before, running_order(done))
    finally:
        await stop_fleet(fleet)


def running_order(done: list[agent_execution_pb2.AgentExecution]) -> list[str]:
    """Messages in the order their executions became RUNNING, for failure messages."""
    ordered = sorted(done, key=lambda e: e.status.start_time.ToNanoseconds())
    return [e.message for e in ordered]


async def test_priority_out_of_range_is_invalid(fleet: Fleet) -> None:
    await apply(fleet, slow_agent())
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await create(fleet, request("slow", priority=9))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "execution.priority" in (raised.value.details() or "")
