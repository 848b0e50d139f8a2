"""Priorities: a saturated runner pool serves urgent executions first."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from temporalio.client import Client

from polyfleet.config import RunnerSettings
from polyfleet.v1 import common_pb2
from tests.conftest import Fleet, add_runner, start_fleet, stop_fleet
from tests.integration.lifecycle.conftest import apply, create, request, slow_agent, wait_phase


async def test_priority_one_created_last_starts_before_the_backlog(
    temporal_client: Client, tmp_path: Path
) -> None:
    fleet = await start_fleet(temporal_client, tmp_path, with_runner=False)
    try:
        await apply(fleet, slow_agent(seconds=0.5))
        backlog = [await create(fleet, request("slow", f"bulk {i}", priority=5)) for i in range(6)]
        urgent = await create(fleet, request("slow", "urgent", priority=1))
        assert urgent.priority == 1 and backlog[0].priority == 5
        # The backlog waits in Temporal; then a runner pool that can take one activity at a
        # time starts, saturated from its first poll.
        await add_runner(
            fleet,
            RunnerSettings(max_concurrent_activities=1, heartbeat_interval=timedelta(seconds=1)),
        )
        done = [await wait_phase(fleet, e.id, timeout=120) for e in (*backlog, urgent)]
        assert all(e.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED for e in done)
        urgent_start = done[-1].status.start_time.ToNanoseconds()
        started_later = [
            e.id for e in done[:-1] if e.status.start_time.ToNanoseconds() > urgent_start
        ]
        # Without priorities the urgent one would start last (FIFO: 0 of 6 later). With them
        # it jumps the queue; only backlog items whose next activity was already queued
        # while the orchestrator was still scheduling the urgent one's may slip ahead.
        assert len(started_later) >= len(backlog) - 2, started_later
    finally:
        await stop_fleet(fleet)


async def test_priority_out_of_range_is_invalid(fleet: Fleet) -> None:
    await apply(fleet, slow_agent())
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await create(fleet, request("slow", priority=9))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "execution.priority" in (raised.value.details() or "")
