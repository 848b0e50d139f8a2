"""The reconciler: executions never stay PENDING or RUNNING while Temporal says otherwise."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client

from polyfleet.channel import create_channel
from polyfleet.config import ReconcilerSettings, TaskQueueSettings
from polyfleet.v1 import (
    agent_execution_pb2,
    agent_execution_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    common_pb2,
)
from tests.conftest import scripted_agent, start_fleet, stop_fleet, unique_queues
from tests.helpers import free_port
from tests.integration.lifecycle.conftest import apply, request, slow_agent, wait_phase
from tests.processes import REPO

P = common_pb2


async def _crash_after_persisting(
    temporal: Client, data_dir: Path, queues_env: dict[str, str], log: Path
) -> str:
    """Run an orchestrator process that SIGKILLs itself right after persisting a Create."""
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        **queues_env,
        "TEMPORAL_ADDRESS": temporal.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": temporal.namespace,
        "POLYFLEET_API_ADDRESS": address,
        "POLYFLEET_DATA_DIR": str(data_dir),
        # Never the default 7280, which a dev fleet or another test run may hold.
        "POLYFLEET_HTTP_ADDRESS": f"127.0.0.1:{free_port()}",
    }

    def spawn() -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "tests.faults", "kill-before-workflow-start"],
                cwd=REPO,
                env=env,
                stderr=out,
            )

    process = await asyncio.to_thread(spawn)
    try:
        channel = create_channel(address)
        await channel.channel_ready()
        await agent_pb2_grpc.AgentServiceStub(channel).ApplyAgent(
            agent_pb2.ApplyAgentRequest(agent=scripted_agent())
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await agent_execution_pb2_grpc.AgentExecutionServiceStub(channel).CreateAgentExecution(
                request("assistant", "are you there?")
            )
        await channel.close()
        assert await asyncio.to_thread(process.wait, 30) == -9  # SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    return address


def _queue_env(queues: TaskQueueSettings) -> dict[str, str]:
    return {f"TEMPORAL_{name.upper()}": value for name, value in queues.model_dump().items()}


@pytest.mark.parametrize("within_grace", [True, False], ids=["started", "failed"])
async def test_execution_persisted_but_never_started_is_repaired_after_restart(
    temporal_client: Client, tmp_path: Path, within_grace: bool
) -> None:
    queues = unique_queues()
    await _crash_after_persisting(temporal_client, tmp_path, _queue_env(queues), tmp_path / "o.log")
    grace = timedelta(minutes=10) if within_grace else timedelta(0)
    fleet = await start_fleet(
        temporal_client,
        tmp_path,
        queues=queues,
        reconciler=ReconcilerSettings(start_grace=grace),
    )
    try:
        listed = await fleet.executions.ListAgentExecutions(
            agent_execution_pb2.ListAgentExecutionsRequest()
        )
        (execution,) = listed.executions
        done = await wait_phase(fleet, execution.id)
        if within_grace:
            assert done.status.phase == P.EXECUTION_PHASE_COMPLETED
            assert done.status.output_text == "You said: are you there?"
        else:
            assert done.status.phase == P.EXECUTION_PHASE_FAILED
            assert "never started" in done.status.error.message
            assert done.status.transitions[-1].source == "reconciler"
        assert fleet.orchestrator.reconciler is not None
        assert sum(fleet.orchestrator.reconciler.totals.values()) == 1
    finally:
        await stop_fleet(fleet)


async def test_workflows_closed_or_gone_while_the_orchestrator_was_down(
    temporal_client: Client, tmp_path: Path
) -> None:
    first = await start_fleet(temporal_client, tmp_path)
    try:
        await apply(first, slow_agent(seconds=30))
        terminated = await first.executions.CreateAgentExecution(request("slow", "a"))
        deleted = await first.executions.CreateAgentExecution(request("slow", "b"))
        # Both RUNNING: a PENDING execution whose workflow is gone could be one whose start
        # was lost, which the reconciler starts again instead of failing it.
        for created in (terminated, deleted):
            await wait_phase(first, created.id, (P.EXECUTION_PHASE_RUNNING,), timeout=20)
    finally:
        await stop_fleet(first)
    # While nobody can run its final UpdateStatus, Temporal closes or forgets the workflows.
    await temporal_client.get_workflow_handle(terminated.workflow_id).terminate("operator")
    await temporal_client.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace=temporal_client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=deleted.workflow_id),
        )
    )
    second = await start_fleet(temporal_client, tmp_path, queues=first.queues, with_runner=False)
    try:
        a = await wait_phase(second, terminated.id, timeout=10)
        assert a.status.phase == P.EXECUTION_PHASE_FAILED
        assert "terminated" in a.status.error.message
        b = await wait_phase(second, deleted.id, timeout=10)
        assert b.status.phase == P.EXECUTION_PHASE_FAILED
        assert "no longer exists" in b.status.error.message or "never started" in (
            b.status.error.message
        )
        running = await second.executions.ListAgentExecutions(
            agent_execution_pb2.ListAgentExecutionsRequest(phase=P.EXECUTION_PHASE_RUNNING)
        )
        assert list(running.executions) == []
    finally:
        await stop_fleet(second)
