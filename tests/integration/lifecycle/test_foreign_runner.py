"""Foreign runners: one that breaks the payload contract fails the execution, at once and
clearly; one that reports a terminal phase is refused, and the workflow still ends it."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from polyfleet import contract
from polyfleet.error_details import field_violations
from polyfleet.roles import Role
from polyfleet.v1 import activities_pb2, common_pb2, runner_pb2, runner_pb2_grpc
from tests.conftest import scripted_agent, start_fleet, stop_fleet
from tests.integration.lifecycle.conftest import HeldRunner, apply, create, get, request, wait_phase


def _json_plain(value: dict[str, str]) -> RawValue:
    # What a runner with a plain JSON data converter sends instead of json/protobuf.
    return RawValue(Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode()))


class ForeignRunner:
    """A non-polyfleet runner; ``broken`` names the activity that answers in json/plain."""

    def __init__(self, broken: str) -> None:
        self.broken = broken

    @activity.defn(name=contract.ENSURE_THREAD)
    async def ensure_thread(
        self, params: activities_pb2.EnsureThreadInput
    ) -> activities_pb2.EnsureThreadOutput | RawValue:
        if self.broken == contract.ENSURE_THREAD:
            return _json_plain({"threadId": "thread-1"})
        return activities_pb2.EnsureThreadOutput(thread_id="thread-1", created=True)

    @activity.defn(name=contract.EXECUTE_GRAPHTON)
    async def execute_graphton(
        self, params: activities_pb2.ExecuteGraphtonInput
    ) -> activities_pb2.ExecuteGraphtonOutput | RawValue:
        if self.broken == contract.EXECUTE_GRAPHTON:
            return _json_plain({"finalMessageId": "m1"})
        return activities_pb2.ExecuteGraphtonOutput(final_message_id="m1")


@pytest.mark.parametrize("broken", [contract.ENSURE_THREAD, contract.EXECUTE_GRAPHTON])
async def test_an_undecodable_result_fails_the_execution_naming_activity_queue_and_encoding(
    temporal_client: Client, tmp_path: Path, broken: str
) -> None:
    fleet = await start_fleet(temporal_client, tmp_path, with_runner=False)
    queue = fleet.queues.agent_execution_runner_task_queue
    foreign = ForeignRunner(broken)
    try:
        await apply(fleet, scripted_agent())
        async with Worker(
            temporal_client,
            task_queue=queue,
            activities=[foreign.ensure_thread, foreign.execute_graphton],
        ):
            created = await create(fleet, request("assistant"))
            # Before the fix the workflow task failed over and over and the execution
            # stayed PENDING until its 10-minute run timeout.
            done = await wait_phase(fleet, created.id, timeout=20)
        assert done.status.phase == common_pb2.EXECUTION_PHASE_FAILED
        error = done.status.error
        assert (error.type, error.step) == (contract.INVALID_ACTIVITY_RESULT, broken)
        assert f"{broken} on task queue '{queue}'" in error.message
        assert "encoding 'json/plain'" in error.message
        assert "json/protobuf" in error.message
        assert any(error.message in m.content for m in done.status.messages)
        # Temporal shows the same failure.
        with pytest.raises(WorkflowFailureError) as raised:
            await temporal_client.get_workflow_handle(created.workflow_id).result()
        cause = raised.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == contract.INVALID_ACTIVITY_RESULT
    finally:
        await stop_fleet(fleet)


@pytest.mark.parametrize(
    "phase",
    [
        common_pb2.EXECUTION_PHASE_COMPLETED,
        common_pb2.EXECUTION_PHASE_FAILED,
        common_pb2.EXECUTION_PHASE_CANCELLED,
    ],
)
async def test_report_progress_with_a_terminal_phase_is_refused_and_changes_nothing(
    temporal_client: Client, tmp_path: Path, phase: int
) -> None:
    fleet = await start_fleet(temporal_client, tmp_path, with_runner=False)
    held = HeldRunner()
    channel = fleet.channel_as(Role.RUNNER)
    runner_service = runner_pb2_grpc.RunnerServiceStub(channel)
    try:
        await apply(fleet, scripted_agent())
        async with Worker(
            temporal_client,
            task_queue=fleet.queues.agent_execution_runner_task_queue,
            activities=[held.ensure_thread, held.execute_graphton],
        ):
            created = await create(fleet, request("assistant"))
            await held.running.wait()
            # The runner that holds the execution's activity: the one most able to forge.
            claim = held.claims[created.id]
            await runner_service.ReportProgress(
                runner_pb2.ReportProgressRequest(
                    execution_id=created.id,
                    report_id="r/1",
                    update=common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_RUNNING),
                ),
                metadata=claim,
            )
            before = await get(fleet, created.id)
            assert before.status.phase == common_pb2.EXECUTION_PHASE_RUNNING
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await runner_service.ReportProgress(
                    runner_pb2.ReportProgressRequest(
                        execution_id=created.id,
                        report_id="r/2",
                        update=common_pb2.ExecutionUpdate(
                            phase=phase,  # type: ignore[arg-type]
                            output_text="forged answer",
                        ),
                    ),
                    metadata=claim,
                )
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert [v.field for v in field_violations(raised.value)] == ["update.phase"]
            assert await get(fleet, created.id) == before  # nothing was applied
            held.release.set()
            done = await wait_phase(fleet, created.id, timeout=30)
        assert done.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED
        assert "forged answer" not in str(done)
        events = [e async for e in fleet.client.agent_executions.events(created.id)]
        ended = [e for e in events if e.phase and contract.is_terminal(e.phase)]
        assert [(e.phase, e.source) for e in ended] == [
            (common_pb2.EXECUTION_PHASE_COMPLETED, "orchestrator")
        ]
    finally:
        await channel.close()
        await stop_fleet(fleet)
