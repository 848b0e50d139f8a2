"""Scale-in never fails work: a runner drains on SIGTERM; health of runners and orchestrator."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc
from temporalio.client import Client

from polyfleet.config import ExecutionSettings, RunnerSettings
from polyfleet.v1 import common_pb2
from runner.health import RUNNER_SERVICE
from tests.conftest import Fleet, add_runner, scripted_agent, start_fleet, stop_fleet, stopping
from tests.helpers import assert_eventually, free_port, http_get
from tests.integration.lifecycle.conftest import apply, create, request, slow_agent, wait_phase
from tests.processes import runner_process

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED


async def test_sigterm_drains_held_executions_while_another_runner_takes_new_work(
    temporal_client: Client, tmp_path: Path
) -> None:
    # A short heartbeat timeout: the held activities survive the drain only if they keep
    # heartbeating through it.
    executions = ExecutionSettings(activity_heartbeat_timeout=timedelta(seconds=3))
    fleet = await start_fleet(temporal_client, tmp_path, with_runner=False, executions=executions)
    async with stopping(fleet):
        port = free_port()
        async with runner_process(
            fleet,
            tmp_path / "draining.log",
            POLYFLEET_RUNNER_HEALTH_PORT=str(port),
            POLYFLEET_RUNNER_HEALTH_ADDRESS="127.0.0.1",
            POLYFLEET_RUNNER_SHUTDOWN_GRACE="2m",
        ) as draining:
            await assert_eventually(
                lambda: http_get(port, "/readyz"), lambda r: r == (200, "ready\n")
            )
            # Longer than the old hard-coded 10 s grace, which failed all of them.
            await apply(fleet, slow_agent(seconds=12))
            held = [await create(fleet, request("slow", f"go {i}")) for i in range(3)]
            for execution in held:
                await wait_phase(fleet, execution.id, (common_pb2.EXECUTION_PHASE_RUNNING,))

            draining.send_signal(signal.SIGTERM)
            _, body = await assert_eventually(
                lambda: http_get(port, "/readyz"),
                lambda r: r[0] == 503,
                message="the draining runner stayed ready",
            )
            assert body.startswith("draining"), body
            # A second SIGTERM (and a Ctrl-C) does not cut the drain short.
            draining.send_signal(signal.SIGTERM)
            draining.send_signal(signal.SIGINT)
            assert await http_get(port, "/livez") == (200, "ok\n")

            async with runner_process(fleet, tmp_path / "second.log"):
                await apply(fleet, scripted_agent("quick"))
                new = await create(fleet, request("quick", "hello"))
                assert (await wait_phase(fleet, new.id, timeout=60)).status.phase == COMPLETED
                done = [await wait_phase(fleet, e.id, timeout=90) for e in held]
                assert [e.status.phase for e in done] == [COMPLETED] * 3, [
                    e.status.error for e in done
                ]
            assert await asyncio.to_thread(draining.wait, 60) == 0
        log = (tmp_path / "draining.log").read_text()
        assert "polling stopped, 3 activities in flight" in log, log
        assert "runner drained" in log, log
        assert "drain grace" not in log, log


async def _check(fleet: Fleet) -> int:
    stub = health_pb2_grpc.HealthStub(fleet.channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=RUNNER_SERVICE))
    return int(response.status)


async def test_readyz_follows_the_orchestrator(temporal_client: Client, tmp_path: Path) -> None:
    first = await start_fleet(temporal_client, tmp_path, with_runner=False)
    second: Fleet | None = None
    port = free_port()
    runner = await add_runner(
        first,
        RunnerSettings(
            heartbeat_interval=timedelta(seconds=1),
            health_port=port,
            health_address="127.0.0.1",
        ),
    )
    try:
        # The orchestrator reports SERVING while Temporal and its store are usable.
        assert await _check(first) == health_pb2.HealthCheckResponse.SERVING
        assert first.orchestrator.health is not None
        assert await first.orchestrator.health.check_once()
        await assert_eventually(lambda: http_get(port, "/readyz"), lambda r: r == (200, "ready\n"))

        first.orchestrator.shutdown()
        await first.tasks[0]
        _, body = await assert_eventually(lambda: http_get(port, "/readyz"), lambda r: r[0] == 503)
        assert body.startswith("orchestrator unreachable"), body
        assert await http_get(port, "/livez") == (200, "ok\n")

        second = await start_fleet(
            temporal_client,
            tmp_path,
            queues=first.queues,
            with_runner=False,
            api_address=first.orchestrator.address,
        )
        await assert_eventually(
            lambda: http_get(port, "/readyz"), lambda r: r == (200, "ready\n"), timeout=30
        )
    finally:
        runner.shutdown()
        await stop_fleet(first)
        if second is not None:
            await stop_fleet(second)
