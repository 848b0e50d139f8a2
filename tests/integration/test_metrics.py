"""Both `/metrics` endpoints after an agent and a workflow execution: polyfleet's and Temporal's.

The orchestrator runs in this process with its metrics set up here (one setup per process);
the runner is a real `python -m runner` process with its own port, so both scrapes are real.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest_asyncio
from temporalio.client import Client

from polyfleet.config import MetricsSettings
from polyfleet.telemetry.metrics import TEMPORAL_METRICS, MetricsExport, setup_metrics
from polyfleet.temporal import runtime
from polyfleet.v1 import agent_execution_pb2, agent_pb2, common_pb2
from tests.conftest import Fleet, scripted_agent, start_fleet, stopping
from tests.helpers import assert_eventually, free_port, scrape_metrics, wait_terminal
from tests.integration.workflows.conftest import apply_workflow, finish, start
from tests.processes import runner_process


async def scrape(port: int) -> str:
    return await asyncio.to_thread(scrape_metrics, port)


async def eventually(port: int, check: Callable[[str], None]) -> None:
    """Scrape ``port`` until ``check`` passes on the text (the last failure is reported)."""
    failures: list[str] = []

    def passes(text: str) -> bool:
        try:
            check(text)
        except AssertionError as exc:
            failures[:] = [str(exc)]
            return False
        return True

    try:
        await assert_eventually(lambda: scrape(port), passes, timeout=30)
    except AssertionError:
        raise AssertionError(f"port {port}: {failures}") from None


def value(text: str, series: str, /, **labels: str) -> float:
    """The sum of the samples of ``series`` whose labels include ``labels``."""
    total, found = 0.0, False
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(series)}(?:\{{(.*)\}})? (\S+)$", line)
        if not match:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1) or ""))
        if all(have.get(key) == wanted for key, wanted in labels.items()):
            total += float(match.group(2))
            found = True
    assert found, f"no {series} with {labels}"
    return total


@pytest_asyncio.fixture
async def measured(temporal_client: Client, tmp_path: Path) -> AsyncIterator[tuple[Fleet, int]]:
    """A fleet whose orchestrator exports metrics (its port), without a runner."""
    export: MetricsExport = setup_metrics(
        MetricsSettings(port=free_port(), address="127.0.0.1"), "polyfleet-orchestrator", 0
    )
    try:
        config = temporal_client.service_client.config
        # The orchestrator's Temporal client records the SDK's metrics into this setup.
        temporal = await Client.connect(
            config.target_host,
            namespace=temporal_client.namespace,
            runtime=runtime(metrics=export.temporal_metrics),
        )
        fleet = await start_fleet(temporal, tmp_path / "data", with_runner=False)
        async with stopping(fleet):
            yield fleet, export.port
    finally:
        export.close()


async def test_both_endpoints_show_executions_model_calls_tasks_and_temporal_metrics(
    measured: tuple[Fleet, int], tmp_path: Path
) -> None:
    fleet, orchestrator_port = measured
    runner_port = free_port()
    scraped: dict[str, str] = {}
    async with runner_process(
        fleet, tmp_path / "runner.log", POLYFLEET_METRICS_PORT=str(runner_port)
    ):
        await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=scripted_agent()))
        created = await fleet.executions.CreateAgentExecution(
            agent_execution_pb2.CreateAgentExecutionRequest(
                execution=agent_execution_pb2.AgentExecution(agent="assistant", message="hello")
            )
        )
        agent_run = await wait_terminal(fleet.client.agent_executions, created.id)
        assert agent_run.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED
        await apply_workflow(fleet, "setter", "do:\n  - one:\n      set: {a: 1}\n")
        workflow_run = await finish(fleet, (await start(fleet, "setter")).id)
        assert workflow_run.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED

        def runner_shows_everything(text: str) -> None:
            scraped["runner"] = text
            assert value(text, "polyfleet_model_calls_total", provider="scripted", error="") >= 1
            assert value(text, "polyfleet_model_call_duration_seconds_count") >= 1
            assert value(text, "polyfleet_model_tokens_total", direction="output") > 0
            assert value(text, "polyfleet_workflow_tasks_total", result="COMPLETED") >= 1
            assert value(text, "polyfleet_workflow_task_duration_seconds_count") >= 1
            # Back to zero once both activities ended; the series exists per activity type.
            assert value(text, "polyfleet_activities_running", activity_type="ExecuteGraphton") == 0
            assert value(text, "polyfleet_runner_draining") == 0
            # Temporal's own: pollers, slots and schedule-to-start latency of the activities.
            assert value(text, "temporal_activity_schedule_to_start_latency_seconds_count") >= 2
            assert value(text, "temporal_worker_task_slots_available", worker_type="ActivityWorker")
            assert value(text, "temporal_num_pollers") > 0
            assert 'service_name="polyfleet-runner"' in text

        await eventually(runner_port, runner_shows_everything)

    def orchestrator_shows_everything(text: str) -> None:
        scraped["orchestrator"] = text
        for kind, name in (("agent", "assistant"), ("workflow", "setter")):
            assert value(text, "polyfleet_executions_created_total", kind=kind, name=name) == 1
            assert (
                value(
                    text,
                    "polyfleet_executions_ended_total",
                    kind=kind,
                    name=name,
                    phase="COMPLETED",
                )
                == 1
            )
            assert value(text, "polyfleet_execution_duration_seconds_count", kind=kind) == 1
            assert value(text, "polyfleet_execution_duration_seconds_sum", kind=kind) > 0
            assert value(text, "polyfleet_execution_queue_wait_seconds_count", kind=kind) == 1
            assert value(text, "polyfleet_executions_active", kind=kind, phase="RUNNING") == 0
        assert value(text, "polyfleet_execution_reports_total", source="runner", result="applied")
        method = "/polyfleet.v1.AgentExecutionService/CreateAgentExecution"
        assert value(text, "polyfleet_api_requests_total", method=method, code="OK") == 1
        assert value(text, "polyfleet_api_request_duration_seconds_count", method=method) == 1
        assert value(text, "polyfleet_store_commit_duration_seconds_count") > 5
        assert value(text, "polyfleet_store_size_bytes") > 0
        assert value(text, "temporal_workflow_task_schedule_to_start_latency_seconds_count") >= 2
        assert value(text, "temporal_worker_task_slots_available", worker_type="WorkflowWorker")
        assert 'service_name="polyfleet-orchestrator"' in text

    await eventually(orchestrator_port, orchestrator_shows_everything)
    # The Temporal names dashboards and alerts may use (deploy/observability) are real.
    both = "\n".join(scraped.values())
    for name in TEMPORAL_METRICS:
        assert re.search(rf"^{name}(_bucket)?\{{", both, re.M), name
