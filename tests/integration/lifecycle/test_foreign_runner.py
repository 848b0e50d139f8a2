"""A foreign runner that breaks the payload contract fails the execution, at once and clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from polyfleet import contract
from polyfleet.v1 import activities_pb2, common_pb2
from tests.conftest import scripted_agent, start_fleet, stop_fleet
from tests.integration.lifecycle.conftest import apply, create, request, wait_phase


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
