"""Event-driven schedules: the follower's position, partial matches across restarts, request ids."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from google.protobuf import json_format

from orchestrator.cloud_events import CloudEvents
from orchestrator.event_schedules import CURSOR, EventSchedules, trigger_request_id
from orchestrator.schedules import describe_trigger
from orchestrator.workflow_executions import WorkflowExecutions
from polyfleet import contract
from polyfleet.cli.schedules import describe_schedule
from polyfleet.v1 import event_pb2, schedule_pb2, workflow_execution_pb2, workflow_pb2
from store import Store

PAIR = """document: {dsl: "1.0.0", namespace: t, name: pair, version: "1.0.0"}
schedule:
  on:
    all:
      - with: {type: left}
      - with: {type: right}
do:
  - a: {set: {}}
"""


class Recorder:
    """Stands in for WorkflowExecutions: records each create request."""

    def __init__(self) -> None:
        self.requests: list[workflow_execution_pb2.CreateWorkflowExecutionRequest] = []

    async def create(
        self, request: workflow_execution_pb2.CreateWorkflowExecutionRequest
    ) -> workflow_execution_pb2.WorkflowExecution:
        self.requests.append(request)
        return workflow_execution_pb2.WorkflowExecution(id=f"wex-{len(self.requests)}")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as opened:
        yield opened


def follower(db: Store, recorder: Recorder) -> EventSchedules:
    return EventSchedules(db, CloudEvents(db), cast(WorkflowExecutions, recorder))


async def publish(db: Store, event_id: str, type: str) -> int:
    record, _ = await CloudEvents(db).publish(
        event_pb2.CloudEvent(id=event_id, source="/t", type=type)
    )
    return record.sequence


async def test_partial_matches_survive_a_restart_and_start_one_execution(db: Store) -> None:
    early = await publish(db, "0", "left")
    recorder = Recorder()
    first = follower(db, recorder)
    await first.load()
    assert first.after == early, "the first start begins after the newest event"
    await db.workflows.create(workflow_pb2.Workflow(name="pair", document=PAIR))
    left = await publish(db, "1", "left")
    assert await first.step(0) == 1
    saved = json.loads(await db.cursors.get(CURSOR) or b"{}")
    assert saved["after"] == left
    assert saved["pending"]["pair"]["state"]["pending"][0][:2] == [0, left]
    # Restarted: the stored partial match completes with the next `right`.
    restarted = follower(db, recorder)
    await restarted.load()
    right = await publish(db, "2", "right")
    assert await restarted.step(0) == 1
    [request] = recorder.requests
    assert request.request_id == f"schedule-on/pair/{left}-{right}"
    assert request.execution.workflow == "pair"
    assert dict(request.execution.labels) == {contract.SCHEDULE_LABEL: "pair"}
    events = json_format.MessageToDict(request.execution.input)["events"]
    assert [(e["id"], e["type"]) for e in events] == [("1", "left"), ("2", "right")]
    assert restarted.pending == {}
    # Processing the same events again (a crash before the position was stored) asks for the
    # same request id: the create finds the first execution.
    again = follower(db, recorder)
    await db.cursors.put(CURSOR, json.dumps(saved).encode())
    await again.load()
    await again.step(0)
    assert [r.request_id for r in recorder.requests] == [request.request_id] * 2


async def test_events_before_the_workflow_and_of_deleted_workflows_count_for_nothing(
    db: Store,
) -> None:
    recorder = Recorder()
    schedules = follower(db, recorder)
    await schedules.load()
    await publish(db, "1", "left")  # before the workflow was applied
    await db.workflows.create(workflow_pb2.Workflow(name="pair", document=PAIR))
    await publish(db, "2", "right")
    await schedules.step(0)
    assert "pair" in schedules.pending and not recorder.requests
    await db.workflows.delete("pair")
    await publish(db, "3", "left")
    await schedules.step(0)
    assert schedules.pending == {} and not recorder.requests


def test_request_ids_stay_within_the_limit() -> None:
    assert trigger_request_id("w", [1, 2]) == "schedule-on/w/1-2"
    long = trigger_request_id("w", list(range(1000, 1100)))
    assert long.startswith("schedule-on/w/1000-") and len(long) <= 200
    assert long == trigger_request_id("w", list(range(1000, 1100)))
    assert trigger_request_id("w", list(range(1000, 1101))) != long


def test_the_cli_describes_an_event_schedule_without_a_temporal_one() -> None:
    text = describe_schedule(schedule_pb2.Schedule(workflow="pair", spec="on all of 2 events"))
    assert "Schedule:  on all of 2 events" in text
    assert "Temporal" not in text and "started by published events" in text
    assert describe_trigger({"all": [{}, {}]}) == "on all of 2 events"
    assert describe_trigger({"any": []}) == "on any event"
    assert describe_trigger({"one": {}}) == "on one event"
