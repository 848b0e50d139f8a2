"""Settings read from the environment."""

from __future__ import annotations

import logging
import runpy
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest

from polyfleet.config import (
    ConfigError,
    ExecutionSettings,
    LogSettings,
    ReconcilerSettings,
    RunnerSettings,
    TaskQueueSettings,
    unknown_variables,
    warn_unknown_variables,
)

ROOT = Path(__file__).resolve().parents[3]


def test_durations_accept_seconds_units_and_iso_8601(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYFLEET_ACTIVITY_SCHEDULE_TO_START_TIMEOUT", "2.5")
    monkeypatch.setenv("POLYFLEET_AGENT_RUN_TIMEOUT", "PT5M")
    monkeypatch.setenv("POLYFLEET_EXECUTE_DEFAULT_WAIT", "1h30m")
    monkeypatch.setenv("POLYFLEET_RUNNER_HEARTBEAT_INTERVAL", "2s")
    settings = ExecutionSettings()
    assert settings.activity_schedule_to_start_timeout == timedelta(seconds=2.5)
    assert settings.agent_run_timeout == timedelta(minutes=5)
    assert settings.execute_default_wait == timedelta(hours=1, minutes=30)
    assert settings.execute_max_wait == timedelta(seconds=300)
    assert RunnerSettings().heartbeat_interval == timedelta(seconds=2)


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYFLEET_AGENT_RUN_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match=r"^POLYFLEET_AGENT_RUN_TIMEOUT='soon': invalid duration"):
        ExecutionSettings()
    monkeypatch.setenv("POLYFLEET_RUNNER_WORKFLOW_ENV", "HOME")
    with pytest.raises(ConfigError, match=r"^POLYFLEET_RUNNER_WORKFLOW_ENV: not valid JSON"):
        RunnerSettings()


def test_queue_names_come_from_the_design_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE", "tenant-a")
    queues = TaskQueueSettings()
    assert queues.agent_execution_runner_task_queue == "tenant-a"
    assert queues.agent_execution_orchestrator_task_queue == "agent_execution_orchestrator"


def test_reconciler_settings_keep_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYFLEET_RECONCILE_START_GRACE", "5m")
    settings = ReconcilerSettings()
    assert settings.start_grace == timedelta(minutes=5)
    assert settings.interval == timedelta(seconds=60)


def test_log_level_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LogSettings().log_level == "INFO"
    monkeypatch.setenv("POLYFLEET_LOG_LEVEL", "debug")
    assert LogSettings().log_level == "DEBUG"
    monkeypatch.setenv("POLYFLEET_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError, match="POLYFLEET_LOG_LEVEL='LOUD'"):
        LogSettings()


def test_the_environment_picks_its_env_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("POLYFLEET_RECONCILE_INTERVAL=10s\nPOLYFLEET_LOG_LEVEL=ERROR\n")
    (tmp_path / ".env.staging").write_text("POLYFLEET_RECONCILE_INTERVAL=20s\n")
    assert ReconcilerSettings().interval == timedelta(seconds=10)
    monkeypatch.setenv("POLYFLEET_ENV", "staging")
    assert ReconcilerSettings().interval == timedelta(seconds=20)
    assert LogSettings().log_level == "ERROR"


def test_unknown_variables_are_named_with_the_closest_known_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    environ = {
        "POLYFLEET_RUNER_AGENTS": "false",
        "POLYFLEET_API_ADDRESS": "127.0.0.1:1",
        "POLYFLEET_WHATEVER": "1",
        "HOME": "/root",
    }
    assert unknown_variables(environ) == {
        "POLYFLEET_RUNER_AGENTS": "POLYFLEET_RUNNER_AGENTS",
        "POLYFLEET_WHATEVER": None,
    }
    with caplog.at_level(logging.WARNING):
        warn_unknown_variables(environ)
    assert [r.getMessage() for r in caplog.records] == [
        "ignoring unknown environment variable POLYFLEET_RUNER_AGENTS; "
        "did you mean POLYFLEET_RUNNER_AGENTS?",
        "ignoring unknown environment variable POLYFLEET_WHATEVER",
    ]


def test_the_readme_table_is_generated_from_the_settings() -> None:
    script = runpy.run_path(str(ROOT / "scripts" / "gen_config_docs.py"))
    updated = cast(Callable[[str], str], script["updated"])
    readme = (ROOT / "README.md").read_text()
    assert updated(readme) == readme, "run scripts/gen_config_docs.py"
