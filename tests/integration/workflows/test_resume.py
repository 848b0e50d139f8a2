"""A runner killed mid-workflow: another runner resumes after the last completed task."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from pathlib import Path

from polyfleet.config import RunnerSettings
from polyfleet.v1 import common_pb2
from tests.conftest import Fleet, add_runner
from tests.http_server import Server
from tests.integration.workflows.conftest import (
    ONLY_WORKFLOWS,
    apply_workflow,
    finish,
    heartbeat_details,
    output,
    resume_after_sigkill,
    start,
)
from tests.processes import runner_process


async def test_sigkilled_runner_is_resumed_without_repeating_completed_tasks(
    runnerless: Fleet, tmp_path: Path, http: Server
) -> None:
    await apply_workflow(
        runnerless,
        "five",
        f"""
        do:
          - one:
              call: http
              with: {{method: get, endpoint: "{http.url}/count/one"}}
          - two:
              call: http
              with: {{method: get, endpoint: "{http.url}/count/two"}}
          - three:
              call: http
              with: {{method: get, endpoint: "{http.url}/hold/three"}}
          - four:
              call: http
              with: {{method: get, endpoint: "{http.url}/count/four"}}
          - five:
              set:
                last: ${{ .count }}
                first: ${{ $workflow.input.order }}
        """,
    )
    # Runner A dies in task three, after the checkpoint of task two reached Temporal.
    created, done = await resume_after_sigkill(
        runnerless, tmp_path, http, "three", "five", {"order": 42}
    )
    assert done.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED, done.status.error
    assert (http.calls["one"], http.calls["two"]) == (1, 1)  # not executed again
    assert http.calls["three"] == 2  # the task that was running when the runner died
    assert http.calls["four"] == 1
    assert output(done) == {"last": 1, "first": 42}
    history = await runnerless.temporal.get_workflow_handle(created.workflow_id).fetch_history()
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert attempts == [2]


async def test_a_checkpoint_no_heartbeat_carried_is_still_resumed_from(
    runnerless: Fleet, tmp_path: Path, http: Server
) -> None:
    await apply_workflow(
        runnerless,
        "two",
        f"""
        do:
          - one:
              call: http
              with: {{method: get, endpoint: "{http.url}/count/one"}}
          - two:
              call: http
              with: {{method: get, endpoint: "{http.url}/count/two"}}
        """,
    )
    # Runner A dies right after storing the checkpoint of task one, before a heartbeat
    # could carry its reference (heartbeats are throttled, so this happens for real).
    dies = ("tests.faults", "kill-after-checkpoint", "1")
    async with runner_process(runnerless, tmp_path / "runner-a.log", dies, **ONLY_WORKFLOWS) as a:
        created = await start(runnerless, "two")
        await asyncio.to_thread(a.wait, 30)
    assert a.returncode == -signal.SIGKILL
    assert http.calls["one"] == 1
    assert await heartbeat_details(runnerless, created.workflow_id) == 0
    await add_runner(
        runnerless, RunnerSettings(agents=False, heartbeat_interval=timedelta(seconds=1))
    )
    done = await finish(runnerless, created.id, timeout=60)
    assert done.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED, done.status.error
    assert (http.calls["one"], http.calls["two"]) == (1, 1)  # task one did not run again
