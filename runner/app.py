"""The runner process: activity-only Temporal workers, no workflows, no state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from polyfleet.channel import bearer_metadata, create_channel
from polyfleet.config import ApiSettings, MetricsSettings, RunnerSettings, TaskQueueSettings
from polyfleet.telemetry.metrics import RUNNER_DRAINING, RUNNER_SERVICE, setup_metrics
from polyfleet.temporal import connect, traced
from runner.activities import RunnerActivities
from runner.drain import InFlight, drain
from runner.health import HealthServer, OrchestratorProbe
from runner.runner_client import RunnerClient
from runner.workflow_host import WorkflowHost

logger = logging.getLogger(__name__)


@dataclass
class RunnerAppSettings:
    """Everything a runner reads from the environment."""

    api: ApiSettings = field(default_factory=ApiSettings)
    queues: TaskQueueSettings = field(default_factory=TaskQueueSettings)
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    # Seconds held activities get to finish on shutdown before they are cancelled; None:
    # runner.shutdown_grace (POLYFLEET_RUNNER_SHUTDOWN_GRACE). Tests pass a short one.
    shutdown_grace: float | None = None
    # None: no metrics export (in-process tests); `python -m runner` reads them. Unset,
    # POLYFLEET_METRICS_PORT serves no /metrics on a runner (docs/observability.md).
    metrics: MetricsSettings | None = None

    @property
    def grace(self) -> float:
        """Seconds the drain waits for held activities before cancelling them."""
        if self.shutdown_grace is not None:
            return self.shutdown_grace
        return self.runner.shutdown_grace.total_seconds()


def runner_activities(activities: RunnerActivities) -> dict[str, list[Callable[..., Any]]]:
    """The activities each runner queue kind serves, keyed 'agent' and 'workflow'."""
    return {
        "agent": [activities.ensure_thread, activities.execute_graphton],
        "workflow": [activities.execute_workflow],
    }


def polled_queues(
    settings: RunnerAppSettings, by_kind: dict[str, list[Callable[..., Any]]]
) -> dict[str, list[Callable[..., Any]]]:
    """The activities of each queue the runner polls, one Worker per queue.

    POLYFLEET_RUNNER_AGENT_QUEUES / _WORKFLOW_QUEUES list the queues (runner pools); empty,
    the one configured queue (TEMPORAL_*_RUNNER_TASK_QUEUE) of the kind. A queue listed for
    both kinds serves both kinds' activities. POLYFLEET_RUNNER_AGENTS / _WORKFLOWS turn a
    kind off.
    """
    s = settings
    names = {
        "agent": (s.runner.agent_queues or [s.queues.agent_execution_runner_task_queue])
        if s.runner.agents
        else [],
        "workflow": (s.runner.workflow_queues or [s.queues.workflow_execution_runner_task_queue])
        if s.runner.workflows
        else [],
    }
    queues: dict[str, list[Callable[..., Any]]] = {}
    for kind, kind_queues in names.items():
        for queue in kind_queues:
            queues.setdefault(queue, []).extend(by_kind[kind])
    return queues


class Runner:
    """One runner process polling the agent and/or workflow runner queues.

    Args:
        settings: The process's settings.
        temporal: A connected client; None connects from the environment.
        after_checkpoint: Called with the sequence of each workflow checkpoint once it is
            stored, before a heartbeat carries it: a hook for tests (tests/faults.py),
            never set in production.

    """

    def __init__(
        self,
        settings: RunnerAppSettings,
        temporal: Client | None = None,
        *,
        after_checkpoint: Callable[[int], None] | None = None,
    ) -> None:
        self.settings = settings
        self._temporal = temporal
        self._after_checkpoint = after_checkpoint
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._draining = False
        self._in_flight = InFlight()
        self._probe: OrchestratorProbe | None = None
        self.workers: list[Worker] = []
        # Set while run() serves health (POLYFLEET_RUNNER_HEALTH_PORT), with its bound port.
        self.health: HealthServer | None = None

    async def wait_ready(self) -> None:
        """Return once the workers poll."""
        await self._ready.wait()

    async def run(self) -> None:
        """Poll until shutdown is requested, then let running activities finish."""
        s = self.settings
        # Before connecting to Temporal, whose runtime records into it.
        export = (
            setup_metrics(s.metrics, RUNNER_SERVICE, default_port=0)
            if s.metrics is not None
            else None
        )
        try:
            await self._run()
        finally:
            if export is not None:
                export.close()

    async def _run(self) -> None:
        s = self.settings
        # Traced while tracing is on: activities continue their workflow's trace.
        temporal = traced(self._temporal or await connect())
        # The token rides in each call's metadata: cheaper than call credentials.
        channel = create_channel(s.api.api_address, s.api, call_credentials=False)
        self._probe = OrchestratorProbe(channel)
        health = None
        if s.runner.health_port:
            health = HealthServer(s.runner.health_address, s.runner.health_port, self.readiness)
        try:
            if health is not None:
                await health.start()
                self.health = health
            client = RunnerClient(
                channel,
                max_backoff=s.runner.report_max_backoff.total_seconds(),
                metadata=bearer_metadata(s.api),
            )
            # `call: agent` runs its child through RunnerService, never the public API.
            host = WorkflowHost(client, s.runner, after_checkpoint=self._after_checkpoint)
            activities = RunnerActivities(client, s.runner, host)
            by_kind = runner_activities(activities)
            queues = polled_queues(s, by_kind)
            self.workers = workers = [
                Worker(
                    temporal,
                    task_queue=queue,
                    activities=queue_activities,
                    max_concurrent_activities=s.runner.max_concurrent_activities,
                    # Past it, Worker.shutdown cancels what still runs (runner/drain.py).
                    graceful_shutdown_timeout=timedelta(seconds=s.grace),
                    interceptors=[self._in_flight],
                    # Cancellation reaches an activity only in a heartbeat's response;
                    # the SDK's default throttle (80% of the heartbeat timeout) would
                    # delay it by up to 24 s.
                    max_heartbeat_throttle_interval=s.runner.heartbeat_throttle_interval,
                    default_heartbeat_throttle_interval=s.runner.heartbeat_throttle_interval,
                )
                for queue, queue_activities in queues.items()
            ]
            if not workers:
                raise ValueError(
                    "runner polls no queue: enable POLYFLEET_RUNNER_AGENTS or _WORKFLOWS"
                )
            async with contextlib.AsyncExitStack() as stack:
                for worker in workers:
                    await stack.enter_async_context(worker)
                RUNNER_DRAINING.set(0)
                logger.info("runner polling %s", ", ".join(queues))
                self._ready.set()
                await self._stop.wait()
                self._draining = True
                # All workers at once: none polls on while another drains.
                await drain(workers, self._in_flight, s.grace)
        finally:
            if health is not None:
                await health.close()
            await channel.close()
            logger.info("runner stopped")

    async def readiness(self) -> str | None:
        """None while the workers poll and the orchestrator answers, else why not."""
        if self._draining or self._stop.is_set():
            return f"draining: {self._in_flight.count} activities in flight"
        if not self._ready.is_set() or self._probe is None:
            return "starting: workers not polling yet"
        return await self._probe.unreachable()

    def shutdown(self) -> None:
        """Ask ``run()`` to drain and return; safe to call more than once.

        A second call (a second SIGTERM or a Ctrl-C) does not shorten the drain: only the
        grace, or SIGKILL, ends it.
        """
        if self._stop.is_set():
            logger.info(
                "runner already draining (%d activities in flight); SIGKILL stops it at once",
                self._in_flight.count,
            )
        self._stop.set()
