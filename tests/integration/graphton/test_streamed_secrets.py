"""A secret the model streams never reaches a watcher, however the stream splits it."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client

from polyfleet.redaction import REDACTED
from polyfleet.v1 import common_pb2
from tests.conftest import scripted_agent, start_fleet, stop_fleet
from tests.integration.graphton.conftest import start_runner
from tests.integration.lifecycle.conftest import apply, create, request, wait_phase

# Words stream one per chunk, slower than the runner's 100 ms delta flush: the secret's
# words land in different delta batches.
SECRET = "open-sesame 0042 tail-word"


async def test_a_secret_streamed_word_by_word_never_reaches_a_watcher(
    temporal_client: Client, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f'SPLIT_KEY="{SECRET}"\n')
    fleet = await start_fleet(temporal_client, tmp_path / "data", with_runner=False)
    try:
        await start_runner(fleet, secrets)
        agent = scripted_agent(name="leaky")
        agent.secrets.append("SPLIT_KEY")
        agent.model.scripted.default_reply = f"the key is {SECRET} ok"
        agent.model.scripted.chunk_words = 1
        agent.model.scripted.chunk_delay_ms = 150
        await apply(fleet, agent)
        created = await create(fleet, request("leaky"))
        done = await wait_phase(fleet, created.id, timeout=60)
        events = [e async for e in fleet.client.agent_executions.events(created.id)]
    finally:
        await stop_fleet(fleet)
    assert done.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED
    deltas = [e.update.content_delta for e in events if e.update.content_delta]
    assert len(deltas) > 1  # really streamed in several batches
    assert "".join(deltas) == f"the key is {REDACTED} ok"
    for event in events:
        assert SECRET not in str(event)
        assert "0042" not in str(event)  # no part of it either
    assert SECRET not in str(done)
    assert done.status.output_text == f"the key is {REDACTED} ok"
