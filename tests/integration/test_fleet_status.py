"""`polyfleet fleet status` against a real orchestrator, Temporal dev server and runner."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from temporalio.client import Client

from polyfleet.v1 import agent_pb2, common_pb2, fleet_pb2
from tests.conftest import add_runner, scripted_agent, start_fleet, stopping
from tests.helpers import assert_eventually, run_cli, wait_terminal


def _queue(status: fleet_pb2.GetFleetStatusResponse, name: str) -> fleet_pb2.TaskQueueStatus:
    return next(q for q in status.queues if q.name == name)


def _count(counts: object, phase: str) -> int:
    assert isinstance(counts, list)
    return sum(int(c.get("count", 0)) for c in counts if c["phase"] == f"EXECUTION_PHASE_{phase}")


async def test_backlog_while_runners_are_stopped_then_pollers_and_phases(
    temporal_client: Client, tmp_path: Path
) -> None:
    async with stopping(await start_fleet(temporal_client, tmp_path, with_runner=False)) as fleet:
        runner_queue = fleet.queues.agent_execution_runner_task_queue
        per_agent = f"per-agent-{uuid.uuid4().hex[:8]}"
        await fleet.agents.CreateAgent(agent_pb2.CreateAgentRequest(agent=scripted_agent()))
        moved = scripted_agent("moved")
        moved.runner_queue = per_agent
        await fleet.agents.CreateAgent(agent_pb2.CreateAgentRequest(agent=moved))
        created = [
            await fleet.client.agent_executions.create("assistant", f"hello {i}") for i in range(2)
        ]

        # Temporal's stats lag the schedule a little. And it lists the pollers its root
        # partition has seen: a new orchestrator's one poller of new workflow tasks may be
        # waiting on another partition at first.
        orchestrator = fleet.queues.agent_execution_orchestrator_task_queue
        await assert_eventually(
            fleet.client.fleet.status,
            lambda s: (
                _queue(s, runner_queue).activity_tasks.backlog_count > 0
                and bool(_queue(s, orchestrator).workflow_tasks.pollers)
            ),
            message="a backlog on the runner queue, and the orchestrator polling its own",
        )
        code, out, err = await run_cli(fleet, "fleet", "status")
        assert code == 0, err
        row = next(
            line.split() for line in out.splitlines() if line.strip().startswith(runner_queue)
        )
        # QUEUE ROLE TASKS POLLERS BACKLOG ...
        assert row[1:4] == ["runner", "activity", "0"]
        assert int(row[4]) > 0
        assert f"no runner polls activity tasks of {runner_queue}" in out
        assert per_agent in out and "agent/moved" in out

        code, out, err = await run_cli(fleet, "fleet", "status", "-o", "json")
        assert code == 0, err
        document = json.loads(out)
        queues = {q["name"]: q for q in document["queues"]}
        assert int(queues[runner_queue]["activityTasks"]["backlogCount"]) > 0
        assert queues[per_agent]["usedBy"] == ["agent/moved"]
        orchestrator_queue = queues[orchestrator]
        assert orchestrator_queue["role"] == "TASK_QUEUE_ROLE_ORCHESTRATOR"
        assert orchestrator_queue["workflowTasks"]["pollers"], "the orchestrator polls"
        waiting = _count(document["agentExecutions"], "PENDING") + _count(
            document["agentExecutions"], "RUNNING"
        )
        assert waiting == 2

        await add_runner(fleet)
        for execution in created:
            await wait_terminal(fleet.client.agent_executions, execution.id)
        status = await assert_eventually(
            fleet.client.fleet.status,
            lambda s: any(
                p.identity == fleet.temporal.identity
                for p in _queue(s, runner_queue).activity_tasks.pollers
            ),
            message="the runner among the pollers",
        )
        completed = {c.phase: c.count for c in status.agent_executions}
        assert completed[common_pb2.EXECUTION_PHASE_COMPLETED] == 2
        code, out, err = await run_cli(fleet, "fleet", "status")
        assert code == 0, err
        assert fleet.temporal.identity in out
