"""The mapping of a workflow's `schedule` onto a Temporal Schedule, and back for the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import (
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
)

from orchestrator.schedules import (
    AFTER_WINDOW,
    CATCHUP_WINDOW,
    schedule_caller,
    schedule_id,
    schedule_id_prefix,
    temporal_schedule,
    workflow_schedule,
)
from orchestrator.workflows.scheduled_start import SCHEDULED_WORKFLOW_START
from polyfleet.dsl.schedule import WorkflowSchedule
from polyfleet.v1 import workflow_pb2

WRITTEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DOCUMENT = 'document: {dsl: "1.0.0", namespace: t, name: n, version: "1.0.0"}\n'


def test_the_id_is_derived_from_the_queue_and_the_name() -> None:
    assert schedule_id("wf-orch", "nightly") == "polyfleet/wf-orch/schedule/nightly"
    assert schedule_id("wf-orch", "nightly").startswith(schedule_id_prefix("wf-orch"))
    assert not schedule_id("wf-orch-2", "n").startswith(schedule_id_prefix("wf-orch"))


def test_the_action_starts_scheduled_workflow_start_on_the_orchestrator_queue() -> None:
    schedule = temporal_schedule(WorkflowSchedule(cron="@daily"), "nightly", "wf-orch", WRITTEN)
    action = schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == SCHEDULED_WORKFLOW_START
    assert list(action.args) == ["nightly"]
    assert action.id == "polyfleet/wf-orch/schedule/nightly"
    assert action.task_queue == "wf-orch"
    assert schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert schedule.policy.catchup_window == CATCHUP_WINDOW


def test_every_is_an_interval() -> None:
    spec = temporal_schedule(WorkflowSchedule(every=timedelta(minutes=5)), "w", "q", WRITTEN).spec
    assert list(spec.intervals) == [ScheduleIntervalSpec(every=timedelta(minutes=5))]
    assert list(spec.cron_expressions) == []
    assert spec.start_at is None


def test_cron_is_temporal_cron_in_utc() -> None:
    schedule = temporal_schedule(WorkflowSchedule(cron="0 3 * * 1"), "w", "q", WRITTEN)
    assert list(schedule.spec.cron_expressions) == ["0 3 * * 1"]
    assert schedule.spec.time_zone_name is None
    assert not schedule.state.limited_actions


def test_after_is_one_action_at_the_write_time_plus_the_delay() -> None:
    schedule = temporal_schedule(WorkflowSchedule(after=timedelta(minutes=10)), "w", "q", WRITTEN)
    at = WRITTEN + timedelta(minutes=10)
    assert schedule.spec.start_at == at
    assert schedule.spec.end_at == at + AFTER_WINDOW
    assert list(schedule.spec.intervals) == [ScheduleIntervalSpec(every=timedelta(seconds=1))]
    assert schedule.state.limited_actions
    assert schedule.state.remaining_actions == 1


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (DOCUMENT + "schedule: {every: PT1M}\ndo: [{a: {set: {}}}]\n", "every 60s"),
        (DOCUMENT + "schedule: {after: PT5M}\ndo: [{a: {set: {}}}]\n", "after 300s"),
        (DOCUMENT + "do: [{a: {set: {}}}]\n", None),
        ("{not yaml", None),
    ],
)
def test_a_stored_workflows_schedule(document: str, expected: str | None) -> None:
    found = workflow_schedule(workflow_pb2.Workflow(name="w", document=document))
    assert (found.describe() if found else None) == expected


def test_executions_are_created_as_the_schedule() -> None:
    caller = schedule_caller("nightly")
    assert (caller.subject, caller.role, caller.via) == ("schedule/nightly", None, "schedule")
