"""The fleet status behind ``FleetService.GetFleetStatus`` and ``polyfleet fleet status``.

Three cheap reads, none of which changes anything:

- the task queues in use: the configured orchestrator and runner queues, every
  ``runner_queue`` an agent or a workflow names, and the queue of every unfinished execution
  (an agent may have moved since its execution was created); each is described by Temporal's
  DescribeTaskQueue (default mode, ``report_stats``), for its workflow and its activity tasks:
  pollers, backlog count and age, add and dispatch rates;
- the executions of each phase, from the store's phase index (keys only);
- RUNNING executions without any event for longer than a threshold ("stuck?"): every write
  of an execution (each report, each transition) stamps its ``update_time``, so a RUNNING
  execution whose ``update_time`` is older than the threshold has had no event since.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

import store
from orchestrator.errors import InvalidArgumentError
from polyfleet.config import TaskQueueSettings
from polyfleet.contract import Execution
from polyfleet.v1 import common_pb2, fleet_pb2

E = TypeVar("E", bound=Execution)

# Bounds, so one call costs the same on a large fleet: unfinished executions examined per
# kind and phase, queues described, stuck IDs listed, sources named per queue.
MAX_EXAMINED = 10_000
MAX_QUEUES = 50
MAX_STUCK_IDS = 20
MAX_USED_BY = 10
# Temporal calls at once, and how long each may take.
_DESCRIBE_CONCURRENCY = 8
_DESCRIBE_TIMEOUT = timedelta(seconds=5)
_PAGE = 1000

ORCHESTRATOR = fleet_pb2.TASK_QUEUE_ROLE_ORCHESTRATOR
RUNNER = fleet_pb2.TASK_QUEUE_ROLE_RUNNER
_PHASES = [
    phase
    for phase in common_pb2.ExecutionPhase.values()
    if phase != common_pb2.EXECUTION_PHASE_UNSPECIFIED
]


@dataclass
class _Queue:
    """A task queue in use and what sends work to it."""

    name: str
    role: fleet_pb2.TaskQueueRole.ValueType
    used_by: list[str] = field(default_factory=list)

    def add(self, source: str) -> None:
        if source not in self.used_by:
            self.used_by.append(source)


@dataclass
class _Unfinished:
    """What the scan of PENDING and RUNNING executions found."""

    runner_queues: set[str] = field(default_factory=set)
    # (seconds since the last event, ID) of RUNNING executions over the threshold.
    stuck: list[tuple[int, str]] = field(default_factory=list)
    examined: int = 0


class FleetStatus:
    """Reads the fleet status.

    Args:
        db: The store.
        temporal: The Temporal client (its namespace is the one described).
        queues: The configured task queues.
        stuck_after: Default threshold of the stuck warning (``POLYFLEET_STUCK_AFTER``).
        clock: Unix nanoseconds now; a test may pass a fake.

    """

    def __init__(
        self,
        db: store.Store,
        temporal: Client,
        queues: TaskQueueSettings,
        stuck_after: timedelta,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._db = db
        self._temporal = temporal
        self._queues = queues
        self._stuck_after = stuck_after
        self._clock = clock

    async def get(self, stuck_after: Duration | None = None) -> fleet_pb2.GetFleetStatusResponse:
        """Read the status.

        Args:
            stuck_after: The request's threshold; None or unset uses the default.

        Raises:
            InvalidArgumentError: ``stuck_after`` is negative or not a valid Duration.

        """
        threshold = self._threshold(stuck_after)
        now = self._clock()
        response = fleet_pb2.GetFleetStatusResponse()
        response.read_time.FromNanoseconds(now)
        counts = await asyncio.gather(
            *(
                repository.count("phase", int(phase))
                for repository in (self._db.agent_executions, self._db.workflow_executions)
                for phase in _PHASES
            )
        )
        for i, phase in enumerate(_PHASES):
            response.agent_executions.add(phase=phase, count=counts[i])
            response.workflow_executions.add(phase=phase, count=counts[len(_PHASES) + i])
        unfinished = await self._unfinished(now - _nanos(threshold))
        stuck = response.stuck
        stuck.stuck_after.FromTimedelta(threshold)
        stuck.count = len(unfinished.stuck)
        stuck.examined = unfinished.examined
        unfinished.stuck.sort(reverse=True)
        stuck.execution_ids.extend(i for _, i in unfinished.stuck[:MAX_STUCK_IDS])
        queues = await self._queues_in_use(unfinished.runner_queues)
        semaphore = asyncio.Semaphore(_DESCRIBE_CONCURRENCY)
        response.queues.extend(
            await asyncio.gather(*(self._describe(queue, semaphore) for queue in queues))
        )
        return response

    def _threshold(self, requested: Duration | None) -> timedelta:
        if requested is None or (requested.seconds == 0 and requested.nanos == 0):
            return self._stuck_after
        if requested.seconds < 0 or requested.nanos < 0:
            raise InvalidArgumentError("stuck_after", "must not be negative")
        try:
            return requested.ToTimedelta()
        except (OverflowError, ValueError):
            raise InvalidArgumentError("stuck_after", "not a valid duration") from None

    async def _unfinished(self, silent_before: int) -> _Unfinished:
        found = _Unfinished()
        await self._scan(self._db.agent_executions, found, silent_before)
        await self._scan(self._db.workflow_executions, found, silent_before)
        return found

    @staticmethod
    async def _scan(
        repository: store.ExecutionRepository[E], found: _Unfinished, silent_before: int
    ) -> None:
        for phase in (common_pb2.EXECUTION_PHASE_PENDING, common_pb2.EXECUTION_PHASE_RUNNING):
            token = ""
            seen = 0
            while seen < MAX_EXAMINED:
                page, token = await repository.list(
                    filters={"phase": int(phase)},
                    page_size=min(_PAGE, MAX_EXAMINED - seen),
                    page_token=token,
                    view=common_pb2.EXECUTION_VIEW_BASIC,
                )
                seen += len(page)
                for execution in page:
                    if execution.runner_queue:
                        found.runner_queues.add(execution.runner_queue)
                    if phase != common_pb2.EXECUTION_PHASE_RUNNING:
                        continue
                    found.examined += 1
                    last = execution.update_time.ToNanoseconds()
                    if last < silent_before:
                        found.stuck.append((silent_before - last, execution.id))
                if not token:
                    break

    async def _queues_in_use(self, execution_queues: set[str]) -> list[_Queue]:
        q = self._queues
        by_name: dict[str, _Queue] = {}

        def use(name: str, role: fleet_pb2.TaskQueueRole.ValueType, source: str) -> None:
            queue = by_name.setdefault(name, _Queue(name, role))
            queue.add(source)

        use(q.agent_execution_orchestrator_task_queue, ORCHESTRATOR, "agent executions")
        use(q.workflow_execution_orchestrator_task_queue, ORCHESTRATOR, "workflow executions")
        use(q.agent_execution_runner_task_queue, RUNNER, "default agent queue")
        use(q.workflow_execution_runner_task_queue, RUNNER, "default workflow queue")
        named: list[tuple[str, str]] = []
        for kind, repository in (("agent", self._db.agents), ("workflow", self._db.workflows)):
            token = ""
            while True:
                page, token = await repository.list(page_size=_PAGE, page_token=token)
                named.extend((d.runner_queue, f"{kind}/{d.name}") for d in page if d.runner_queue)
                if not token:
                    break
        for name, source in sorted(named):
            use(name, RUNNER, source)
        for name in sorted(execution_queues - set(by_name)):
            use(name, RUNNER, "executions")
        orchestrators = [queue for queue in by_name.values() if queue.role == ORCHESTRATOR]
        runners = sorted(
            (queue for queue in by_name.values() if queue.role == RUNNER), key=lambda x: x.name
        )
        return [*orchestrators, *runners][:MAX_QUEUES]

    async def _describe(
        self, queue: _Queue, semaphore: asyncio.Semaphore
    ) -> fleet_pb2.TaskQueueStatus:
        status = fleet_pb2.TaskQueueStatus(
            name=queue.name,
            role=queue.role,
            used_by=queue.used_by[:MAX_USED_BY],
            used_by_count=len(queue.used_by),
        )
        try:
            async with semaphore:
                workflow, activity = await asyncio.gather(
                    self._describe_type(queue.name, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
                    self._describe_type(queue.name, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
                )
        except RPCError as exc:
            status.error = f"{exc.status.name}: {exc.message}"[:500]
            return status
        status.workflow_tasks.CopyFrom(workflow)
        status.activity_tasks.CopyFrom(activity)
        return status

    async def _describe_type(
        self, name: str, task_type: TaskQueueType.ValueType
    ) -> fleet_pb2.TaskQueueTypeStatus:
        described = await self._temporal.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self._temporal.namespace,
                task_queue=TaskQueue(name=name, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
                task_queue_type=task_type,
                report_stats=True,
            ),
            timeout=_DESCRIBE_TIMEOUT,
        )
        result = fleet_pb2.TaskQueueTypeStatus()
        for poller in described.pollers:
            result.pollers.add(
                identity=poller.identity,
                last_access_time=_timestamp(poller.last_access_time),
                rate_per_second=poller.rate_per_second,
            )
        stats = described.stats
        result.backlog_count = stats.approximate_backlog_count
        result.backlog_age.seconds = stats.approximate_backlog_age.seconds
        result.backlog_age.nanos = stats.approximate_backlog_age.nanos
        result.tasks_add_rate = stats.tasks_add_rate
        result.tasks_dispatch_rate = stats.tasks_dispatch_rate
        return result


def _timestamp(value: Timestamp) -> Timestamp:
    # Temporal's generated Timestamp is the same well-known type, from its own import.
    return Timestamp(seconds=value.seconds, nanos=value.nanos)


def _nanos(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
