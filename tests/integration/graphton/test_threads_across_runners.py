"""A session's second execution continues the conversation on another runner process."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from tests import processes
from tests.conftest import Fleet, start_fleet, stop_fleet
from tests.integration.graphton.conftest import (
    apply,
    create,
    openai_agent,
    start_runner,
    stop_runner,
    wait_terminal,
    write_secrets,
)
from tests.integration.graphton.fake_openai import FakeOpenAI, Recorded, Reply

REPO = Path(__file__).resolve().parents[3]


@asynccontextmanager
async def runner_process(
    fleet: Fleet, temporal_address: str, secrets: Path, log: Path
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """``python -m runner`` on the fleet's agent queue only, with the test's secrets."""
    assert temporal_address == fleet.temporal.service_client.config.target_host
    async with processes.runner_process(
        fleet,
        log,
        POLYFLEET_RUNNER_WORKFLOWS="false",
        POLYFLEET_RUNNER_HEARTBEAT_INTERVAL="PT1S",
        POLYFLEET_RUNNER_SECRETS_FILE=str(secrets),
        POLYFLEET_RUNNER_SECRETS_FROM_ENVIRONMENT="false",
    ) as process:
        yield process


def numbered_answers() -> Callable[[Recorded], Reply]:
    counter = itertools.count(1)
    return lambda _: Reply(text=f"Answer number {next(counter)}")


async def _served_by(fleet: Fleet, workflow_id: str) -> set[str]:
    """Identities (pid@host) of the workers that ran the workflow's activities."""
    history = await fleet.temporal.get_workflow_handle(workflow_id).fetch_history()
    return {
        e.activity_task_started_event_attributes.identity
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    }


async def test_second_turn_sees_the_first_on_a_different_runner_process(
    temporal_client: Client, tmp_path: Path
) -> None:
    fleet = await start_fleet(temporal_client, tmp_path / "data", with_runner=False)
    address = temporal_client.service_client.config.target_host
    secrets = write_secrets(tmp_path / "secrets.env")
    try:
        with FakeOpenAI(numbered_answers()) as server:
            await apply(fleet, openai_agent("chatty", server))
            # Turn one on a runner in this process, stopped before turn two...
            await start_runner(fleet, secrets)
            one = await wait_terminal(fleet, (await create(fleet, "chatty", "Hi, I am Ada")).id)
            await stop_runner(fleet)
            # ...which a runner in another process serves.
            async with runner_process(fleet, address, secrets, tmp_path / "runner.log"):
                two = await wait_terminal(
                    fleet, (await create(fleet, "chatty", "Who am I?", one.session_id)).id
                )
    finally:
        await stop_fleet(fleet)

    assert one.status.output_text == "Answer number 1", one.status.error
    assert two.status.output_text == "Answer number 2", two.status.error
    conversation = [(m["role"], m["content"]) for m in server.requests[1].messages]
    assert conversation == [
        ("system", "You are a test agent."),
        ("user", "Hi, I am Ada"),
        ("assistant", "Answer number 1"),
        ("user", "Who am I?"),
    ]
    first_runner = await _served_by(fleet, one.workflow_id)
    second_runner = await _served_by(fleet, two.workflow_id)
    assert len(first_runner) == len(second_runner) == 1
    assert first_runner != second_runner
