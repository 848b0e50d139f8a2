"""Process-wide logging: the text and JSON formats, their IDs, and Temporal core's lines."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from temporalio.runtime import TelemetryFilter

from polyfleet.config import ConfigError, LogSettings
from polyfleet.logs import (
    CORE_LOGGER,
    JsonFormatter,
    configure_logging,
    record_ids,
    temporal_core_logging,
)


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _record(message: str = "hello %s", *args: object, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("runner.test", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_json_line_carries_the_ids_of_the_record_and_the_current_span() -> None:
    record = _record(
        "hello %s", "world", execution_id="aex-1", workflow_id="agent-aex-1", run_id="run-1"
    )
    tracer = TracerProvider().get_tracer(__name__)
    with tracer.start_as_current_span("model call") as span:
        line = JsonFormatter().format(record)
        context = span.get_span_context()
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "runner.test"
    assert entry["message"] == "hello world"
    assert entry["time"].endswith("Z")
    assert entry["execution_id"] == "aex-1"
    assert entry["workflow_id"] == "agent-aex-1"
    assert entry["run_id"] == "run-1"
    assert entry["trace_id"] == f"{context.trace_id:032x}"
    assert entry["span_id"] == f"{context.span_id:016x}"


def test_json_line_without_ids_or_span_has_neither() -> None:
    entry = json.loads(JsonFormatter().format(_record("plain")))
    assert set(entry) == {"time", "level", "logger", "message"}


def test_json_line_has_the_traceback_as_a_string_and_escapes_control_characters() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "\x1b[31mred\x1b[0m", (), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\x1b" not in line
    entry = json.loads(line)
    assert entry["message"] == "\x1b[31mred\x1b[0m"
    assert isinstance(entry["exc_info"], str)
    assert "ValueError: boom" in entry["exc_info"]


def test_ids_come_from_temporalio_logger_extras() -> None:
    activity_record = _record(
        "x", temporal_activity={"workflow_id": "wf-1", "workflow_run_id": "run-9"}
    )
    assert record_ids(activity_record) == {"workflow_id": "wf-1", "run_id": "run-9"}
    workflow_record = _record(
        "x", execution_id="aex-2", temporal_workflow={"workflow_id": "wf-2", "run_id": "run-2"}
    )
    assert record_ids(workflow_record) == {
        "execution_id": "aex-2",
        "workflow_id": "wf-2",
        "run_id": "run-2",
    }


def test_json_format_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POLYFLEET_LOG_FORMAT", "JSON")
    configure_logging()
    logging.getLogger("orchestrator.test").info("started", extra={"execution_id": "aex-3"})
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["execution_id"] for line in lines] == ["aex-3"]


def test_text_format_stays_as_it_was(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    logging.getLogger("orchestrator.test").info("started", extra={"execution_id": "aex-4"})
    line = capsys.readouterr().err.strip()
    assert line.endswith(" INFO orchestrator.test: started execution_id=aex-4")


def test_an_unknown_format_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYFLEET_LOG_FORMAT", "yaml")
    with pytest.raises(ConfigError, match="POLYFLEET_LOG_FORMAT='yaml'"):
        LogSettings()


@dataclass
class _CoreLog:
    """What temporalio's bridge hands the forwarder for one Temporal core line."""

    message: str
    target: str = "temporal_sdk_core::worker"
    level: int = logging.WARNING
    time: float = 1_700_000_000.0
    fields: dict[str, Any] = field(default_factory=lambda: {"task_queue": "q"})


def test_temporal_core_lines_are_forwarded_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    config = temporal_core_logging()
    assert config.forwarding is not None
    assert config.forwarding.logger.name == CORE_LOGGER
    assert isinstance(config.filter, TelemetryFilter)
    assert config.filter.core_level == "INFO"
    config.forwarding._on_logs([_CoreLog("worker polling")])
    entry = json.loads(capsys.readouterr().err)
    assert entry["logger"] == CORE_LOGGER
    assert entry["message"] == "worker polling"
    assert entry["target"] == "temporal_sdk_core::worker"
    assert entry["fields"] == {"task_queue": "q"}


def test_temporal_core_level_follows_the_log_level() -> None:
    configure_logging("WARNING", "text")
    config = temporal_core_logging()
    assert isinstance(config.filter, TelemetryFilter)
    assert config.filter.core_level == "WARN"
    assert config.forwarding is not None
    assert config.forwarding.prepend_target_on_message  # text: target in the message
