"""Event-driven schedules end to end: a document's `schedule.on` starts executions when events
are published, with the events as input, once per event even across an orchestrator restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from temporalio.client import Client

import store
from orchestrator.event_schedules import CURSOR
from polyfleet import contract
from polyfleet.v1 import (
    common_pb2,
    event_pb2,
    schedule_pb2,
    schedule_pb2_grpc,
    workflow_execution_pb2,
)
from tests.conftest import Fleet, start_fleet, stopping
from tests.helpers import assert_eventually
from tests.integration.workflows.conftest import apply_workflow, finish, output

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED
ON_ALERT = """
schedule:
  on:
    one:
      with:
        type: test.alert
        data: {level: high}
do:
  - page:
      set:
        patient: ${ $workflow.input.events[0].data.patient }
        count: ${ $workflow.input.events | length }
"""
ON_PAIR = """
schedule:
  on:
    all:
      - with: {type: test.left}
      - with: {type: test.right}
do:
  - pair:
      set:
        types: ${ [$workflow.input.events[].type] }
"""


async def _triggered(fleet: Fleet, workflow: str) -> list[workflow_execution_pb2.WorkflowExecution]:
    response = await fleet.workflow_executions.ListWorkflowExecutions(
        workflow_execution_pb2.ListWorkflowExecutionsRequest(
            workflow=workflow, labels={contract.SCHEDULE_LABEL: workflow}, page_size=100
        )
    )
    return sorted(response.executions, key=lambda e: e.request_id)


async def _count(fleet: Fleet, workflow: str, expected: int) -> None:
    await assert_eventually(
        lambda: _triggered(fleet, workflow),
        lambda found: len(found) >= expected,
        message=f"{expected} executions of {workflow}",
    )


async def test_a_matching_event_starts_an_execution_that_completes_with_it(fleet: Fleet) -> None:
    await apply_workflow(fleet, "on-alert", ON_ALERT)
    quiet = {"id": "q1", "source": "/ward", "type": "test.alert", "data": {"level": "low"}}
    assert (await fleet.client.events.publish(quiet)).published
    other = {"id": "o1", "source": "/ward", "type": "test.other", "data": {"level": "high"}}
    await fleet.client.events.publish(other)
    patient = {"id": 7, "name": "Ada"}
    alert: dict[str, Any] = {"id": "a1", "source": "/ward", "type": "test.alert"}
    alert["data"] = {"level": "high", "patient": patient}
    published = await fleet.client.events.publish(alert)
    await _count(fleet, "on-alert", 1)
    # Events are processed in order: the two before it were seen and started nothing.
    [execution] = await _triggered(fleet, "on-alert")
    assert execution.request_id == f"schedule-on/on-alert/{published.record.sequence}"
    assert execution.created_by.subject == "schedule/on-alert"
    assert execution.created_by.via == "schedule"
    done = await finish(fleet, execution.id)
    assert done.status.phase == COMPLETED, done.status.error
    assert output(done) == {"patient": {"id": 7, "name": "Ada"}, "count": 1}


async def test_all_starts_once_each_filter_has_matched_an_event(fleet: Fleet) -> None:
    await apply_workflow(fleet, "on-pair", ON_PAIR)
    await fleet.client.events.publish({"id": "r1", "source": "/t", "type": "test.right"})
    await fleet.client.events.publish({"id": "r2", "source": "/t", "type": "test.right"})
    await fleet.client.events.publish({"id": "l1", "source": "/t", "type": "test.left"})
    await _count(fleet, "on-pair", 1)
    # r2 was not consumed (its filter had matched r1): the next pair starts over.
    await fleet.client.events.publish({"id": "l2", "source": "/t", "type": "test.left"})
    await fleet.client.events.publish({"id": "r3", "source": "/t", "type": "test.right"})
    await _count(fleet, "on-pair", 2)
    executions = await _triggered(fleet, "on-pair")
    assert [e.request_id for e in executions] == [
        "schedule-on/on-pair/1-3",
        "schedule-on/on-pair/4-5",
    ]
    outputs = []
    for execution in executions:
        done = await finish(fleet, execution.id)
        assert done.status.phase == COMPLETED, done.status.error
        outputs.append(output(done))
    assert outputs == [
        {"types": ["test.right", "test.left"]},
        {"types": ["test.left", "test.right"]},
    ]


async def test_a_restart_neither_misses_nor_repeats_an_event(
    temporal_client: Client, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    alert = {"source": "/ward", "type": "test.alert", "data": {"level": "high", "patient": 1}}
    async with stopping(await start_fleet(temporal_client, data_dir, with_runner=False)) as fleet:
        queues = fleet.queues
        address = fleet.orchestrator.address
        await apply_workflow(fleet, "on-alert", ON_ALERT)
        db = fleet.orchestrator.db
        assert db is not None
        before = await db.cursors.get(CURSOR)
        assert before is not None, "the position is stored at the first start"
        first = await fleet.client.events.publish({"id": "e1", **alert})
        await _count(fleet, "on-alert", 1)
        # The position is stored after the execution is created: wait for it too.
        await _processed(fleet, first.record.sequence)
    # As if the orchestrator had died after creating the execution but before storing its
    # position; and an event arrives while it is down.
    db = await asyncio.to_thread(store.Store.open, data_dir / "store")
    try:
        assert json.loads(await db.cursors.get(CURSOR) or b"{}")["after"] >= first.record.sequence
        await db.cursors.put(CURSOR, before)
        event = event_pb2.CloudEvent(id="e2", source="/ward", type="test.alert")
        event.data.struct_value.update({"level": "high", "patient": 2})
        second, _ = await db.events.append(event_pb2.EventRecord(event=event))
    finally:
        await asyncio.to_thread(db.close)
    restarted = await start_fleet(
        temporal_client, data_dir, with_runner=False, queues=queues, api_address=address
    )
    async with stopping(restarted):
        await _count(restarted, "on-alert", 2)
        executions = await _triggered(restarted, "on-alert")
        # e1 was processed again and found its execution; e2 started the second one.
        assert [e.request_id for e in executions] == [
            f"schedule-on/on-alert/{first.record.sequence}",
            f"schedule-on/on-alert/{second.sequence}",
        ]


async def _processed(fleet: Fleet, sequence: int) -> None:
    db = fleet.orchestrator.db
    assert db is not None

    async def after() -> int:
        return int(json.loads(await db.cursors.get(CURSOR) or b'{"after": 0}')["after"])

    await assert_eventually(after, lambda last: last >= sequence, message=f"event {sequence}")


async def test_schedule_service_lists_pauses_and_resumes_it(fleet: Fleet) -> None:
    schedules = schedule_pb2_grpc.ScheduleServiceStub(fleet.channel)
    await apply_workflow(fleet, "on-alert", ON_ALERT)
    listed = await schedules.ListSchedules(schedule_pb2.ListSchedulesRequest())
    [found] = [s for s in listed.schedules if s.workflow == "on-alert"]
    assert (found.spec, found.paused, found.schedule_id) == ("on one event", False, "")
    paused = await schedules.PauseSchedule(
        schedule_pb2.PauseScheduleRequest(workflow="on-alert", reason="drill")
    )
    assert paused.paused and paused.note.endswith(": drill"), paused.note
    alert = {"source": "/ward", "type": "test.alert", "data": {"level": "high", "patient": 1}}
    ignored = await fleet.client.events.publish({"id": "p1", **alert})
    await _processed(fleet, ignored.record.sequence)
    resumed = await schedules.ResumeSchedule(
        schedule_pb2.ResumeScheduleRequest(workflow="on-alert")
    )
    assert not resumed.paused
    started = await fleet.client.events.publish({"id": "p2", **alert})
    await _count(fleet, "on-alert", 1)
    [execution] = await _triggered(fleet, "on-alert")
    assert execution.request_id == f"schedule-on/on-alert/{started.record.sequence}"
    # Not a Temporal Schedule: nothing to delete (remove `schedule.on` to stop it).
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await schedules.DeleteSchedule(schedule_pb2.DeleteScheduleRequest(workflow="on-alert"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
