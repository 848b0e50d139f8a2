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

from polyfleet.channel import create_channel, token_metadata
from polyfleet.config import ApiSettings, RunnerSettings, TaskQueueSettings
from polyfleet.temporal import connect
from runner.activities import RunnerActivities
from runner.runner_client import RunnerClient
from runner.workflow_host import WorkflowHost

logger = logging.getLogger(__name__)


@dataclass
class RunnerAppSettings:
    """Everything a runner reads from the environment."""

    api: ApiSettings = field(default_factory=ApiSettings)
    queues: TaskQueueSettings = field(default_factory=TaskQueueSettings)
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    # Seconds running activities get to finish on shutdown before they are cancelled.
    shutdown_grace: float = 10.0


def runner_activities(activities: RunnerActivities) -> dict[str, list[Callable[..., Any]]]:
    """The activities each runner queue kind serves, keyed 'agent' and 'workflow'."""
    return {
        "agent": [activities.ensure_thread, activities.execute_graphton],
        "workflow": [activities.execute_workflow],
    }


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
        self.workers: list[Worker] = []

    async def wait_ready(self) -> None:
        """Return once the workers poll."""
        await self._ready.wait()

    async def run(self) -> None:
        """Poll until shutdown is requested, then let running activities finish."""
        s = self.settings
        temporal = self._temporal or await connect()
        channel = create_channel(s.api.api_address, s.api)
        try:
            client = RunnerClient(
                channel,
                max_backoff=s.runner.report_max_backoff.total_seconds(),
                metadata=token_metadata(s.api),
            )
            # `call: agent` runs its child through RunnerService, never the public API.
            host = WorkflowHost(client, s.runner, after_checkpoint=self._after_checkpoint)
            activities = RunnerActivities(client, s.runner, host)
            by_kind = runner_activities(activities)
            queues = {
                "agent": s.queues.agent_execution_runner_task_queue if s.runner.agents else "",
                "workflow": (
                    s.queues.workflow_execution_runner_task_queue if s.runner.workflows else ""
                ),
            }
            self.workers = workers = [
                Worker(
                    temporal,
                    task_queue=queue,
                    activities=by_kind[kind],
                    max_concurrent_activities=s.runner.max_concurrent_activities,
                    graceful_shutdown_timeout=timedelta(seconds=s.shutdown_grace),
                    # Cancellation reaches an activity only in a heartbeat's response;
                    # the SDK's default throttle (80% of the heartbeat timeout) would
                    # delay it by up to 24 s.
                    max_heartbeat_throttle_interval=s.runner.heartbeat_throttle_interval,
                    default_heartbeat_throttle_interval=s.runner.heartbeat_throttle_interval,
                )
                for kind, queue in queues.items()
                if queue
            ]
            if not workers:
                raise ValueError(
                    "runner polls no queue: enable POLYFLEET_RUNNER_AGENTS or _WORKFLOWS"
                )
            async with contextlib.AsyncExitStack() as stack:
                for worker in workers:
                    await stack.enter_async_context(worker)
                logger.info("runner polling %s", ", ".join(q for q in queues.values() if q))
                self._ready.set()
                await self._stop.wait()
                logger.info("runner draining")
        finally:
            await channel.close()
            logger.info("runner stopped")

    def shutdown(self) -> None:
        """Ask ``run()`` to drain and return; safe to call more than once."""
        self._stop.set()
