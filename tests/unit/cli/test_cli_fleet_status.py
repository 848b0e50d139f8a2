"""The rendering of ``polyfleet fleet status`` and its arguments."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from polyfleet.cli.fleet_status import render_fleet_status
from polyfleet.cli.main import main
from polyfleet.v1 import common_pb2, fleet_pb2

NOW = 1_800_000_000


def _status() -> fleet_pb2.GetFleetStatusResponse:
    status = fleet_pb2.GetFleetStatusResponse(read_time=Timestamp(seconds=NOW))
    orchestrator = status.queues.add(
        name="orch-q",
        role=fleet_pb2.TASK_QUEUE_ROLE_ORCHESTRATOR,
        used_by=["agent executions"],
        used_by_count=1,
    )
    orchestrator.workflow_tasks.pollers.add(
        identity="1@host orchestrator store=s",
        last_access_time=Timestamp(seconds=NOW - 3),
        rate_per_second=100000,
    )
    runner = status.queues.add(
        name="runner-q",
        role=fleet_pb2.TASK_QUEUE_ROLE_RUNNER,
        used_by=["default agent queue", "agent/a"],
        used_by_count=12,
    )
    runner.activity_tasks.backlog_count = 7
    runner.activity_tasks.backlog_age.CopyFrom(Duration(seconds=95))
    runner.activity_tasks.tasks_add_rate = 1.5
    # An activity sent to an orchestrator queue shows up beside its workflow tasks.
    orchestrator.activity_tasks.backlog_count = 1
    status.queues.add(
        name="broken-q", role=fleet_pb2.TASK_QUEUE_ROLE_RUNNER, error="UNAVAILABLE: down"
    )
    for phase, count in ((common_pb2.EXECUTION_PHASE_PENDING, 7), (2, 3), (3, 40), (4, 1), (5, 0)):
        status.agent_executions.add(phase=phase, count=count)
        status.workflow_executions.add(phase=phase, count=0)
    status.stuck.stuck_after.CopyFrom(Duration(seconds=600))
    status.stuck.count = 3
    status.stuck.execution_ids.extend(["aex-1", "wex-2"])
    return status


def test_text_shows_queues_pollers_phases_and_warnings() -> None:
    text = render_fleet_status(_status())
    lines = text.splitlines()

    def row(start: str) -> list[str]:
        return next(line.split() for line in lines if line.strip().startswith(start))

    runner = row("runner-q")
    assert runner[:7] == ["runner-q", "runner", "activity", "0", "7", "1m35s", "1.50/0.00"]
    assert "default agent queue, agent/a (+10 more)" in text
    orchestrator_rows = [line.split() for line in lines if line.strip().startswith("orch-q ")]
    queue_rows, poller_rows = orchestrator_rows[:2], orchestrator_rows[2:]
    assert [r[1:5] for r in queue_rows] == [
        ["orchestrator", "workflow", "1", "0"],
        ["orchestrator", "activity", "0", "1"],
    ]
    assert [r[1:5] for r in poller_rows] == [["workflow", "1@host", "orchestrator", "store=s"]]
    assert "(3s ago)" in text
    assert row("agent")[1:] == ["7", "3", "40", "1", "0"]
    assert "WARNING: no runner polls activity tasks of runner-q; 7 tasks waiting" in text
    assert "WARNING: cannot describe task queue broken-q: UNAVAILABLE: down" in text
    assert (
        "WARNING: stuck? 3 RUNNING executions without any event for over 10m: "
        "aex-1, wex-2 (+1 more)" in text
    )


def test_a_healthy_fleet_has_no_warnings() -> None:
    status = fleet_pb2.GetFleetStatusResponse(read_time=Timestamp(seconds=NOW))
    queue = status.queues.add(name="runner-q", role=fleet_pb2.TASK_QUEUE_ROLE_RUNNER)
    queue.activity_tasks.pollers.add(identity="r@h", last_access_time=Timestamp(seconds=NOW))
    text = render_fleet_status(status)
    assert "WARNING" not in text
    assert "(now)" in text


@pytest.mark.parametrize("bad", ["0", "-5m", "soon"])
def test_stuck_after_must_be_a_positive_duration(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["fleet", "status", "--stuck-after", bad])
    assert info.value.code == 2
    assert "argument --stuck-after" in capsys.readouterr().err
