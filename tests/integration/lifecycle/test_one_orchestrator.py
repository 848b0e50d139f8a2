"""Exactly one orchestrator per store, workflow-only on Temporal.

Real Temporal dev server, real LMDB, real gRPC: a second orchestrator on the same data
directory, on the same port, or of another store on the same queues is refused; a restart
of the same store is not held up by its own leftover poller entries.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import PollerInfo
from temporalio.client import Client

from orchestrator import Orchestrator, OrchestratorSettings
from orchestrator.ownership import (
    ApiAddressInUseError,
    DataDirLockedError,
    StartupRefusedError,
    TaskQueueTakenError,
    queue_pollers,
    store_id_of,
)
from polyfleet.config import ApiSettings, StoreSettings, TaskQueueSettings
from polyfleet.v1 import agent_pb2
from tests.conftest import Fleet, start_fleet, stop_fleet, stopping, unique_queues
from tests.helpers import assert_eventually, free_port

REPO = Path(__file__).resolve().parents[3]


def orchestrator_queues(queues: TaskQueueSettings) -> list[str]:
    return [
        queues.agent_execution_orchestrator_task_queue,
        queues.workflow_execution_orchestrator_task_queue,
    ]


async def store_pollers(temporal: Client, queue: str, store_id: str) -> list[PollerInfo]:
    pollers = await queue_pollers(temporal, queue)
    return [p for p in pollers if store_id_of(p.identity) == store_id]


async def wait_polling(fleet: Fleet) -> None:
    """Wait until Temporal lists the fleet's orchestrator on both of its queues."""
    store_id = fleet.orchestrator.store_id
    for queue in orchestrator_queues(fleet.queues):
        await assert_eventually(
            functools.partial(store_pollers, fleet.temporal, queue, store_id),
            bool,
            message=f"no poller of store {store_id} on {queue}",
        )


def second_orchestrator(
    temporal: Client, data_dir: Path, queues: TaskQueueSettings, address: str | None = None
) -> Orchestrator:
    return Orchestrator(
        OrchestratorSettings(
            api=ApiSettings(api_address=address or f"127.0.0.1:{free_port()}"),
            store=StoreSettings(data_dir=data_dir),
            queues=queues,
            shutdown_grace=1.0,
        ),
        temporal=temporal,
    )


async def refusal(orchestrator: Orchestrator) -> StartupRefusedError:
    """Run ``orchestrator`` and return why it refused to start; fail if it starts."""
    run = asyncio.create_task(orchestrator.run())
    ready = asyncio.create_task(orchestrator.wait_ready())
    await asyncio.wait({run, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if not run.done():
        ready.cancel()
        orchestrator.shutdown()
        await asyncio.wait_for(run, timeout=30)
        pytest.fail("the second orchestrator started beside the first")
    ready.cancel()
    error = run.exception()
    assert isinstance(error, StartupRefusedError), error
    return error


async def assert_serves(fleet: Fleet) -> None:
    await fleet.agents.ListAgents(agent_pb2.ListAgentsRequest())


@pytest_asyncio.fixture
async def first(temporal_client: Client, tmp_path: Path) -> AsyncIterator[Fleet]:
    """The running orchestrator (no runner) that a second one is started beside."""
    fleet = await start_fleet(temporal_client, tmp_path / "first", with_runner=False)
    async with stopping(fleet):
        yield fleet


async def test_orchestrator_queues_have_workflow_pollers_and_no_activity_poller(
    fleet: Fleet,
) -> None:
    await wait_polling(fleet)
    for queue in orchestrator_queues(fleet.queues):
        pollers = await queue_pollers(fleet.temporal, queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
        assert pollers == [], f"activity pollers on {queue}: {[p.identity for p in pollers]}"


async def test_a_second_orchestrator_on_the_same_data_dir_is_refused(
    temporal_client: Client, first: Fleet
) -> None:
    data_dir = first.orchestrator.settings.store.data_dir
    error = await refusal(second_orchestrator(temporal_client, data_dir, unique_queues()))

    assert isinstance(error, DataDirLockedError)
    assert error.holder_pid == os.getpid()
    assert str(data_dir) in str(error)
    await assert_serves(first)


async def test_a_second_orchestrator_process_on_the_same_data_dir_exits_naming_the_holder(
    temporal_client: Client, first: Fleet
) -> None:
    data_dir = first.orchestrator.settings.store.data_dir
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal_client.service_client.config.target_host,
        "POLYFLEET_DATA_DIR": str(data_dir),
        "POLYFLEET_API_ADDRESS": f"127.0.0.1:{free_port()}",
        # Never the default 7280, which a dev fleet or another test run may hold.
        "POLYFLEET_HTTP_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    second = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "orchestrator"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert second.returncode == 2, second.stderr
    assert f"the data directory {data_dir} is in use by process {os.getpid()}" in second.stderr
    assert "Traceback" not in second.stderr
    await assert_serves(first)


async def test_a_second_orchestrator_on_the_same_port_is_refused(
    temporal_client: Client, tmp_path: Path, first: Fleet
) -> None:
    address = first.orchestrator.address
    second = second_orchestrator(temporal_client, tmp_path / "second", unique_queues(), address)

    error = await refusal(second)

    assert isinstance(error, ApiAddressInUseError)
    assert f"cannot listen on POLYFLEET_API_ADDRESS={address}: Address already in use" in (
        str(error)
    )
    await assert_serves(first)


async def test_another_store_on_the_same_queues_is_refused_while_the_first_runs(
    temporal_client: Client, tmp_path: Path, first: Fleet
) -> None:
    await wait_polling(first)

    # Its own connection, as another process would have: the SDK refuses two workers on
    # one queue through one client before any of polyfleet's checks could run.
    other = await Client.connect(
        temporal_client.service_client.config.target_host,
        namespace=temporal_client.namespace,
    )
    error = await refusal(second_orchestrator(other, tmp_path / "second", first.queues))

    assert isinstance(error, TaskQueueTakenError)
    assert error.task_queue == first.queues.agent_execution_orchestrator_task_queue
    assert store_id_of(error.identity) == first.orchestrator.store_id
    assert error.task_queue in str(error) and error.identity in str(error)
    await assert_serves(first)


async def test_a_restart_of_the_same_store_starts_at_once_despite_its_old_pollers(
    temporal_client: Client, tmp_path: Path
) -> None:
    first = await start_fleet(temporal_client, tmp_path, with_runner=False)
    store_id = first.orchestrator.store_id
    await wait_polling(first)
    await stop_fleet(first)
    # Temporal keeps listing the stopped process's pollers, as recent, for a while.
    queue = first.queues.agent_execution_orchestrator_task_queue
    assert await store_pollers(temporal_client, queue, store_id)

    restarted = await start_fleet(temporal_client, tmp_path, queues=first.queues, with_runner=False)
    try:
        assert restarted.orchestrator.store_id == store_id
        await assert_serves(restarted)
    finally:
        await stop_fleet(restarted)
