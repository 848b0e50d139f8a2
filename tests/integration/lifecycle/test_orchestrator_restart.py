"""Agent executions in flight ride out an orchestrator restart: none fails.

Set POLYFLEET_TEST_OUTAGE_SECONDS to try a longer restart (e.g. 60) by hand.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.client import Client

from polyfleet.v1 import common_pb2
from tests.conftest import Fleet, start_fleet, stop_fleet
from tests.helpers import assert_eventually
from tests.integration.lifecycle.conftest import apply, create, request, slow_agent, wait_phase

# Long enough to exhaust the old RunnerService retry budget (5 attempts, about 3 s).
OUTAGE = timedelta(seconds=float(os.environ.get("POLYFLEET_TEST_OUTAGE_SECONDS", "9")))


async def _last_heartbeats(fleet: Fleet, workflow_ids: list[str]) -> list[datetime | None]:
    # The last heartbeat of each execution's running ExecuteGraphton (None: none running).
    beats: list[datetime | None] = []
    for workflow_id in workflow_ids:
        description = await fleet.temporal.get_workflow_handle(workflow_id).describe()
        pending = description.raw_description.pending_activities
        beats.append(
            pending[0].last_heartbeat_time.ToDatetime(tzinfo=UTC)
            if pending and pending[0].HasField("last_heartbeat_time")
            else None
        )
    return beats


async def test_agent_executions_complete_across_an_orchestrator_restart(
    temporal_client: Client, tmp_path: Path
) -> None:
    first = await start_fleet(temporal_client, tmp_path)
    second: Fleet | None = None
    try:
        # Ten seconds of streaming: every agent is still answering when the outage starts,
        # even on a loaded machine.
        await apply(first, slow_agent(seconds=10))
        created = [await create(first, request("slow", f"go {i}")) for i in range(6)]
        for execution in created:
            await wait_phase(first, execution.id, (common_pb2.EXECUTION_PHASE_RUNNING,))
        # The orchestrator goes away (API, store and workflow workers) while every agent is
        # still streaming: their reports are refused from now on.
        first.orchestrator.shutdown()
        await first.tasks[0]
        down_at = datetime.now(UTC)
        workflow_ids = [e.workflow_id for e in created]
        # The outage lasts until every execution's activity heartbeated OUTAGE into it: the
        # runner keeps retrying its reports and keeps the activities alive meanwhile. (Before
        # the fix they failed after about 3 s and stopped heartbeating.)
        await assert_eventually(
            lambda: _last_heartbeats(first, workflow_ids),
            lambda beats: all(b is not None and b >= down_at + OUTAGE for b in beats),
            timeout=OUTAGE.total_seconds() + 20,
            interval=0.5,
            message="an execution stopped heartbeating during the outage",
        )
        # Back on the same address and store, as a restarted StatefulSet pod would be.
        second = await start_fleet(
            temporal_client,
            tmp_path,
            queues=first.queues,
            with_runner=False,
            api_address=first.orchestrator.address,
        )
        # Channels in this process share the connection to that address, still backing off
        # from the outage: wait for it rather than fail fast on the first read.
        await asyncio.wait_for(second.channel.channel_ready(), timeout=30)
        done = [await wait_phase(second, e.id, timeout=60) for e in created]
        assert [e.status.phase for e in done] == [common_pb2.EXECUTION_PHASE_COMPLETED] * 6, [
            e.status.error for e in done
        ]
        # Every report was applied once: the answer is whole, not repeated.
        assert {e.status.output_text for e in done} == {" ".join(["done"] * 10)}
    finally:
        await stop_fleet(first)
        if second is not None:
            await stop_fleet(second)
