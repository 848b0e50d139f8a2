"""Workflow schedules end to end: a document's `schedule` as a Temporal Schedule that creates
executions through a real fleet, ScheduleService, the CLI, and reconciliation at start-up."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from orchestrator.schedules import schedule_id, temporal_schedule
from polyfleet import contract
from polyfleet.dsl.schedule import WorkflowSchedule
from polyfleet.error_details import field_violations
from polyfleet.roles import Role
from polyfleet.v1 import (
    common_pb2,
    schedule_pb2,
    schedule_pb2_grpc,
    workflow_execution_pb2,
    workflow_pb2,
)
from tests.conftest import Fleet, start_fleet, stopping
from tests.helpers import assert_eventually, run_cli
from tests.integration.workflows.conftest import apply_workflow, finish, start

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED
TICKER = """
schedule:
  every: PT1S
do:
  - tick:
      set:
        ticked: true
"""
NO_SCHEDULE = """
do:
  - tick:
      set:
        ticked: true
"""


def _schedules(channel: grpc.aio.Channel) -> schedule_pb2_grpc.ScheduleServiceAsyncStub:
    return schedule_pb2_grpc.ScheduleServiceStub(channel)


async def _scheduled(fleet: Fleet, workflow: str) -> list[workflow_execution_pb2.WorkflowExecution]:
    response = await fleet.workflow_executions.ListWorkflowExecutions(
        workflow_execution_pb2.ListWorkflowExecutionsRequest(
            workflow=workflow, labels={contract.SCHEDULE_LABEL: workflow}, page_size=100
        )
    )
    return list(response.executions)


async def _temporal_has(fleet: Fleet, workflow: str) -> bool:
    handle = fleet.temporal.get_schedule_handle(
        schedule_id(fleet.queues.workflow_execution_orchestrator_task_queue, workflow)
    )
    try:
        await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


@asynccontextmanager
async def _cleaned(fleet: Fleet, *workflows: str) -> AsyncIterator[None]:
    # Schedules live in the session's Temporal server: never leave one firing after a test.
    try:
        yield
    finally:
        queue = fleet.queues.workflow_execution_orchestrator_task_queue
        for name in workflows:
            try:
                await fleet.temporal.get_schedule_handle(schedule_id(queue, name)).delete()
            except RPCError:
                pass


async def _clock(fleet: Fleet, seconds: int) -> None:
    # Lets real time pass through the fleet itself (a workflow that waits), not a sleep.
    await apply_workflow(fleet, "clock", f"do:\n  - w:\n      wait: PT{seconds}S\n")
    assert (await finish(fleet, (await start(fleet, "clock")).id)).status.phase == COMPLETED


async def test_every_creates_completed_executions_and_pause_stops_them(fleet: Fleet) -> None:
    schedules = _schedules(fleet.channel)
    async with _cleaned(fleet, "ticker"):
        await apply_workflow(fleet, "ticker", TICKER)

        executions = await assert_eventually(
            lambda: _scheduled(fleet, "ticker"),
            lambda found: sum(e.status.phase == COMPLETED for e in found) >= 2,
            timeout=20,
            message="two scheduled executions completed",
        )
        first = executions[-1]
        assert first.created_by.subject == "schedule/ticker"
        assert first.created_by.via == "schedule"
        assert first.labels[contract.SCHEDULE_LABEL] == "ticker"
        assert first.request_id.startswith(
            schedule_id(fleet.queues.workflow_execution_orchestrator_task_queue, "ticker")
        )

        described = await schedules.GetSchedule(schedule_pb2.GetScheduleRequest(workflow="ticker"))
        assert described.workflow == "ticker"
        assert described.spec == "every 1s"
        assert not described.paused
        assert described.next_action_times
        assert described.action_count >= 2
        assert described.recent_actions[-1].start_workflow_id

        paused = await schedules.PauseSchedule(
            schedule_pb2.PauseScheduleRequest(workflow="ticker", reason="maintenance")
        )
        assert paused.paused
        assert paused.note == "paused by dev-admin (admin): maintenance"
        taken = paused.action_count
        await _clock(fleet, 3)
        after = await schedules.GetSchedule(schedule_pb2.GetScheduleRequest(workflow="ticker"))
        assert after.paused
        assert after.action_count == taken
        # Every action taken created exactly one execution, and each one completes.
        done = await assert_eventually(
            lambda: _scheduled(fleet, "ticker"),
            lambda found: len(found) == taken and all(e.status.phase == COMPLETED for e in found),
            timeout=20,
        )
        assert len({e.request_id for e in done}) == taken

        resumed = await schedules.ResumeSchedule(
            schedule_pb2.ResumeScheduleRequest(workflow="ticker")
        )
        assert not resumed.paused
        await assert_eventually(
            lambda: _scheduled(fleet, "ticker"), lambda found: len(found) > taken, timeout=20
        )

        # Re-applying keeps the schedule; dropping `schedule` from the document deletes it.
        await apply_workflow(fleet, "ticker", NO_SCHEDULE)
        assert not await _temporal_has(fleet, "ticker")
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await schedules.GetSchedule(schedule_pb2.GetScheduleRequest(workflow="ticker"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        listed = await schedules.ListSchedules(schedule_pb2.ListSchedulesRequest())
        assert [s.workflow for s in listed.schedules] == []


async def test_after_creates_one_execution_after_the_delay(fleet: Fleet) -> None:
    schedules = _schedules(fleet.channel)
    async with _cleaned(fleet, "later"):
        written = await apply_workflow(fleet, "later", "schedule:\n  after: PT1S\n" + NO_SCHEDULE)
        (execution,) = await assert_eventually(
            lambda: _scheduled(fleet, "later"),
            lambda found: len(found) == 1 and found[0].status.phase == COMPLETED,
            timeout=20,
        )
        assert execution.create_time.seconds >= written.update_time.seconds + 1
        described = await schedules.GetSchedule(schedule_pb2.GetScheduleRequest(workflow="later"))
        assert described.spec == "after 1s"
        assert described.action_count == 1
        assert list(described.next_action_times) == []


async def test_delete_schedule_and_workflow_and_roles(fleet: Fleet) -> None:
    schedules = _schedules(fleet.channel)
    body = "schedule:\n  cron: '0 3 * * MON'\n" + NO_SCHEDULE
    async with _cleaned(fleet, "nightly"):
        await apply_workflow(fleet, "nightly", body)
        listed = await schedules.ListSchedules(schedule_pb2.ListSchedulesRequest())
        assert [(s.workflow, s.spec) for s in listed.schedules] == [("nightly", "cron 0 3 * * 1")]
        next_run = listed.schedules[0].next_action_times[0].ToDatetime()
        assert (next_run.weekday(), next_run.hour, next_run.minute) == (0, 3, 0)

        reader = fleet.channel_as(Role.READER)
        operator = fleet.channel_as(Role.OPERATOR)
        try:
            # A reader sees schedules but cannot pause one; an operator cannot delete one.
            seen = await _schedules(reader).GetSchedule(
                schedule_pb2.GetScheduleRequest(workflow="nightly")
            )
            assert seen.workflow == "nightly"
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _schedules(reader).PauseSchedule(
                    schedule_pb2.PauseScheduleRequest(workflow="nightly")
                )
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _schedules(operator).DeleteSchedule(
                    schedule_pb2.DeleteScheduleRequest(workflow="nightly")
                )
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            paused = await _schedules(operator).PauseSchedule(
                schedule_pb2.PauseScheduleRequest(workflow="nightly")
            )
            assert paused.paused
        finally:
            await reader.close()
            await operator.close()

        # Re-applying the document keeps a paused schedule paused.
        await apply_workflow(fleet, "nightly", body)
        again = await schedules.GetSchedule(schedule_pb2.GetScheduleRequest(workflow="nightly"))
        assert again.paused

        await schedules.DeleteSchedule(schedule_pb2.DeleteScheduleRequest(workflow="nightly"))
        assert not await _temporal_has(fleet, "nightly")
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await schedules.DeleteSchedule(schedule_pb2.DeleteScheduleRequest(workflow="nightly"))
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        assert (await schedules.ListSchedules(schedule_pb2.ListSchedulesRequest())).schedules == []

        # Applying the workflow recreates it; deleting the workflow deletes it.
        await apply_workflow(fleet, "nightly", body)
        assert await _temporal_has(fleet, "nightly")
        await fleet.workflows.DeleteWorkflow(workflow_pb2.DeleteWorkflowRequest(name="nightly"))
        assert not await _temporal_has(fleet, "nightly")

        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await schedules.PauseSchedule(schedule_pb2.PauseScheduleRequest(workflow="Not A Name"))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(bad.value)[0].field == "workflow"


@pytest.mark.parametrize(
    ("schedule", "pointer"),
    [
        ("{cron: '61 * * * *'}", "workflow.document/schedule/cron"),
        ("{every: PT0.5S}", "workflow.document/schedule/every"),
        ("{every: PT1M, after: PT1M}", "workflow.document/schedule/after"),
        ("{on: {one: {with: {type: x}}, until: false}}", "workflow.document/schedule/on/until"),
    ],
)
async def test_an_invalid_schedule_is_refused_at_its_pointer(
    fleet: Fleet, schedule: str, pointer: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await apply_workflow(fleet, "bad", f"schedule: {schedule}\n" + NO_SCHEDULE)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(refused.value)[0].field == pointer
    assert not await _temporal_has(fleet, "bad")


async def test_cli_lists_pauses_and_deletes(fleet: Fleet) -> None:
    async with _cleaned(fleet, "hourly"):
        await apply_workflow(fleet, "hourly", "schedule:\n  cron: '@hourly'\n" + NO_SCHEDULE)
        code, out, err = await run_cli(fleet, "schedules", "list")
        assert code == 0, err
        assert out.split("\n")[0].split() == ["WORKFLOW", "SPEC", "PAUSED", "NEXT", "ACTIONS"]
        assert out.split("\n")[1].split()[:4] == ["hourly", "cron", "@hourly", "no"]
        code, out, err = await run_cli(fleet, "schedules", "list", "-o", "json")
        assert code == 0, err
        assert [s["workflow"] for s in json.loads(out)["schedules"]] == ["hourly"]
        code, out, err = await run_cli(fleet, "schedules", "pause", "hourly", "--reason", "quiet")
        assert code == 0, err
        assert "Paused:    yes" in out
        assert "quiet" in out
        code, out, err = await run_cli(fleet, "schedules", "delete", "hourly")
        assert code == 0, err
        assert not await _temporal_has(fleet, "hourly")


async def test_startup_recreates_missing_schedules_and_deletes_orphans(
    temporal_client: Client, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    async with stopping(await start_fleet(temporal_client, data_dir, with_runner=False)) as fleet:
        queues = fleet.queues
        address = fleet.orchestrator.address
        await apply_workflow(fleet, "kept", "schedule:\n  cron: '@daily'\n" + NO_SCHEDULE)
    queue = queues.workflow_execution_orchestrator_task_queue
    # As after restoring a store: Temporal lost one schedule and has one the store lacks.
    await temporal_client.get_schedule_handle(schedule_id(queue, "kept")).delete()
    await temporal_client.create_schedule(
        schedule_id(queue, "orphan"),
        temporal_schedule(WorkflowSchedule(cron="@daily"), "orphan", queue, datetime.now(UTC)),
    )
    restarted = await start_fleet(
        temporal_client, data_dir, with_runner=False, queues=queues, api_address=address
    )
    async with stopping(restarted), _cleaned(restarted, "kept", "orphan"):
        assert await _temporal_has(restarted, "kept")
        assert not await _temporal_has(restarted, "orphan")
