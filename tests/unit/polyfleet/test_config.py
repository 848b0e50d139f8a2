"""Settings read from the environment."""

from __future__ import annotations

from datetime import timedelta

import pytest

from polyfleet.config import ExecutionSettings, TaskQueueSettings


def test_durations_accept_seconds_and_iso_8601(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYFLEET_ACTIVITY_SCHEDULE_TO_START_TIMEOUT", "2.5")
    monkeypatch.setenv("POLYFLEET_AGENT_RUN_TIMEOUT", "PT5M")
    settings = ExecutionSettings()
    assert settings.activity_schedule_to_start_timeout == timedelta(seconds=2.5)
    assert settings.agent_run_timeout == timedelta(minutes=5)
    assert settings.execute_max_wait == timedelta(seconds=300)


def test_a_bad_duration_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYFLEET_AGENT_RUN_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="agent_run_timeout"):
        ExecutionSettings()


def test_queue_names_come_from_the_design_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE", "tenant-a")
    queues = TaskQueueSettings()
    assert queues.agent_execution_runner_task_queue == "tenant-a"
    assert queues.agent_execution_orchestrator_task_queue == "agent_execution_orchestrator"
