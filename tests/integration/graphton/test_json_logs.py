"""A runner process with POLYFLEET_LOG_FORMAT=json writes JSON lines only, core lines too.

Its tracing is on (an OTLP endpoint that discards), so the model call's log line carries
the trace ID as well as the execution's IDs.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client

from polyfleet.logs import CORE_LOGGER
from polyfleet.v1 import common_pb2
from tests import processes
from tests.conftest import start_fleet, stop_fleet
from tests.integration.graphton.conftest import (
    apply,
    create,
    openai_agent,
    wait_terminal,
    write_secrets,
)
from tests.integration.graphton.fake_openai import FakeOpenAI, Recorded, Reply
from tests.otlp import OtlpReceiver


def fail_once() -> Callable[[Recorded], Reply]:
    """A transient 503 on the first request, then an answer: the runner logs its retry."""
    counter = itertools.count()
    return lambda _: (
        Reply(status=503, error_message="overloaded") if next(counter) == 0 else Reply(text="ok")
    )


def _entries(log: Path) -> list[dict[str, Any]]:
    data = log.read_bytes()
    assert b"\x1b" not in data, "an ANSI escape in the log"
    lines = [line for line in data.decode().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line parses
    assert all(isinstance(entry, dict) for entry in entries)
    return entries


async def test_runner_process_writes_json_lines_with_the_execution_and_core_lines(
    temporal_client: Client, tmp_path: Path
) -> None:
    fleet = await start_fleet(temporal_client, tmp_path / "data", with_runner=False)
    secrets = write_secrets(tmp_path / "secrets.env")
    log = tmp_path / "runner.log"
    try:
        # A receiver that only counts: an OTLP endpoint turns the runner's tracing on.
        with FakeOpenAI(fail_once()) as server, OtlpReceiver(keep=False).serving() as otlp:
            await apply(fleet, openai_agent("logged", server))
            async with processes.runner_process(
                fleet,
                log,
                POLYFLEET_LOG_FORMAT="json",
                POLYFLEET_RUNNER_WORKFLOWS="false",
                POLYFLEET_RUNNER_SECRETS_FILE=str(secrets),
                POLYFLEET_RUNNER_SECRETS_FROM_ENVIRONMENT="false",
                POLYFLEET_RUNNER_MODEL_RETRY_INITIAL_BACKOFF="0.05",
                OTEL_EXPORTER_OTLP_ENDPOINT=otlp,
                OTEL_EXPORTER_OTLP_INSECURE="true",
            ):
                execution = await wait_terminal(fleet, (await create(fleet, "logged", "hi")).id)
    finally:
        await stop_fleet(fleet)
    assert execution.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED
    entries = _entries(log)
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    # Temporal core's own lines, forwarded into Python logging.
    assert any(entry["logger"] == CORE_LOGGER for entry in entries)
    # The retry warning is logged inside the model call: it names the execution.
    retries = [entry for entry in entries if "model call attempt" in entry["message"]]
    assert retries, [entry["message"] for entry in entries]
    assert retries[0]["execution_id"] == execution.id
    assert retries[0]["workflow_id"] and retries[0]["run_id"]
    # Tracing is on in the runner: the line is in the model call's span, so in a trace.
    assert re.fullmatch("[0-9a-f]{32}", retries[0]["trace_id"]), retries[0]
    assert re.fullmatch("[0-9a-f]{16}", retries[0]["span_id"]), retries[0]
    if execution.trace_id:  # this process traces its API too: one trace, the execution's
        assert retries[0]["trace_id"] == execution.trace_id
