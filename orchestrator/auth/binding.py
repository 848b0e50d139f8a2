"""Runners act only on their own work: RunnerService calls bound to the running activity.

A runner names, in the metadata of every RunnerService call, the activity attempt it is
running (workflow ID, run ID, activity ID, attempt: what every Temporal SDK's activity
info holds) and its Temporal worker identity (:data:`polyfleet.contract.RUNNER_METADATA_*`).
The orchestrator believes that claim only once Temporal confirms it: the execution's
workflow has that activity pending, in that attempt, started by that worker. The call may
then touch that execution only — its status, context, checkpoint, thread and children.

A confirmation is trusted for ``POLYFLEET_AUTH_RUNNER_BINDING_TTL`` and covers that worker's
calls about that workflow run, whichever of the run's activities they name: a report every
100 ms costs one DescribeWorkflowExecution per worker, run and TTL, not one per report, and
an agent execution whose EnsureThread and ExecuteGraphton one runner runs costs one, not
two (each cost 1.0-2.2 ms of the orchestrator's CPU and 1.8-3.5 ms of Temporal's in the
fleet benchmark, docs/benchmarks.md). A refused claim is never cached. The TTL bounds how
long a worker whose attempt Temporal has already ended (timed out, retried elsewhere) can
still write. Nothing secret travels: the claim only names which of its own activities the
runner runs, and a runner credential is still required (docs/security.md, "Runners act only
on their own work").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, RPCError, RPCStatusCode

import store
from orchestrator.errors import RunnerNotBoundError, UnavailableError
from polyfleet import contract
from polyfleet.quoting import quote
from polyfleet.v1 import common_pb2, runner_pb2

logger = logging.getLogger(__name__)

# Pending-activity states in which the worker that started the attempt still holds it.
_HELD = frozenset(
    {
        PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
        PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED,
    }
)
# Confirmed claims kept at most; the oldest go first (one per running attempt is typical).
_MAX_CACHED = 10_000
_METADATA = (
    contract.RUNNER_METADATA_WORKFLOW_ID,
    contract.RUNNER_METADATA_RUN_ID,
    contract.RUNNER_METADATA_ACTIVITY_ID,
    contract.RUNNER_METADATA_ATTEMPT,
    contract.RUNNER_METADATA_WORKER_IDENTITY,
)


@dataclass(frozen=True)
class ActivityClaim:
    """The activity attempt a runner says it is running."""

    workflow_id: str
    run_id: str
    activity_id: str
    attempt: int
    worker_identity: str

    @property
    def worker_run(self) -> tuple[str, str, str]:
        """What a confirmation covers: this worker's calls about this workflow run."""
        return (self.workflow_id, self.run_id, self.worker_identity)

    @property
    def execution_id(self) -> str:
        """The execution whose workflow runs the activity, or ``""`` if it is not one."""
        return contract.execution_of_workflow(self.workflow_id)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> ActivityClaim:
        """Read the claim from a call's metadata.

        Raises:
            RunnerNotBoundError: A key is missing or the attempt is not a number.

        """
        missing = [key for key in _METADATA if not metadata.get(key)]
        if missing:
            raise RunnerNotBoundError(
                "RunnerService calls must name the activity attempt the runner is running: "
                f"metadata {', '.join(missing)} missing (docs/contract.md, 'RunnerService')"
            )
        try:
            attempt = int(metadata[contract.RUNNER_METADATA_ATTEMPT])
        except ValueError:
            raise RunnerNotBoundError(
                f"metadata {contract.RUNNER_METADATA_ATTEMPT} is not a number"
            ) from None
        return cls(
            workflow_id=metadata[contract.RUNNER_METADATA_WORKFLOW_ID],
            run_id=metadata[contract.RUNNER_METADATA_RUN_ID],
            activity_id=metadata[contract.RUNNER_METADATA_ACTIVITY_ID],
            attempt=attempt,
            worker_identity=metadata[contract.RUNNER_METADATA_WORKER_IDENTITY],
        )


class RunnerBinding:
    """Checks that a RunnerService call touches only the execution of the caller's activity.

    Args:
        temporal: The client that confirms claims (DescribeWorkflowExecution).
        db: The store, to find an execution's thread.
        ttl: Seconds a confirmation is trusted.

    """

    def __init__(self, temporal: Client, db: store.Store, ttl: float) -> None:
        self._temporal = temporal
        self._db = db
        self._ttl = ttl
        # a confirmed claim's worker_run -> monotonic expiry of the confirmation
        self._confirmed: dict[tuple[str, str, str], float] = {}
        # claims being confirmed now: concurrent calls of one attempt share one describe
        self._pending: dict[ActivityClaim, asyncio.Task[None]] = {}
        self._threads: dict[str, str] = {}

    async def check(self, method: str, metadata: Mapping[str, str], request: Any) -> None:
        """Allow the call, or raise.

        Args:
            method: The full method name.
            metadata: The call's metadata (lowercase keys).
            request: The decoded request message.

        Raises:
            RunnerNotBoundError: No claim, a claim Temporal does not confirm, or a
                request about another execution than the claim's.

        """
        claim = ActivityClaim.from_metadata(metadata)
        bound = claim.execution_id
        if not bound:
            raise RunnerNotBoundError(
                f"workflow {quote(claim.workflow_id)} is not a polyfleet execution's workflow"
            )
        target = getattr(request, "execution_id", None)
        if isinstance(target, str):
            if target != bound:
                raise RunnerNotBoundError(
                    f"this runner runs an activity of execution {bound}, not of "
                    f"{quote(target)}: a runner may act only on the execution it runs",
                )
        await self._confirm(claim)
        thread_id = getattr(request, "thread_id", None)
        if isinstance(request, runner_pb2.ReportProgressRequest) and request.HasField(
            "thread_append"
        ):
            thread_id = request.thread_append.thread_id
        if isinstance(thread_id, str) and thread_id != await self._thread_of(bound):
            raise RunnerNotBoundError(
                f"thread {quote(thread_id)} is not the thread of execution {bound}, "
                "whose activity this runner runs"
            )

    async def _confirm(self, claim: ActivityClaim) -> None:
        expiry = self._confirmed.get(claim.worker_run)
        if expiry is not None and expiry > time.monotonic():
            return
        task = self._pending.get(claim)
        if task is None:
            task = asyncio.ensure_future(self._describe(claim))
            self._pending[claim] = task
            task.add_done_callback(lambda _: self._pending.pop(claim, None))
        await asyncio.shield(task)

    async def _describe(self, claim: ActivityClaim) -> None:
        # The service call itself: the client's describe() also decodes the memo, search
        # attributes and times into a description, which this check never reads.
        request = DescribeWorkflowExecutionRequest(
            namespace=self._temporal.namespace,
            execution=WorkflowExecution(workflow_id=claim.workflow_id, run_id=claim.run_id),
        )
        try:
            described = await self._temporal.workflow_service.describe_workflow_execution(
                request, retry=True
            )
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise RunnerNotBoundError(
                    f"workflow {quote(claim.workflow_id)} run {quote(claim.run_id)} does not "
                    "exist: a runner may act only on the execution it runs"
                ) from None
            # Temporal unreachable: the runner's client retries UNAVAILABLE.
            raise UnavailableError(
                f"cannot confirm the runner's activity with Temporal: {err.message}"
            ) from None
        for pending in described.pending_activities:
            if (
                pending.activity_id == claim.activity_id
                and pending.attempt == claim.attempt
                and pending.state in _HELD
                and pending.last_worker_identity == claim.worker_identity
            ):
                self._remember(claim)
                return
        logger.warning(
            "refused a RunnerService call for execution %s: activity %s attempt %d is not "
            "running on worker %s",
            claim.execution_id,
            claim.activity_id,
            claim.attempt,
            claim.worker_identity,
        )
        raise RunnerNotBoundError(
            f"activity {quote(claim.activity_id)} attempt {claim.attempt} of execution "
            f"{claim.execution_id} is not running on worker {quote(claim.worker_identity)}: "
            "a runner may act only on the execution whose activity it is running"
        )

    def _remember(self, claim: ActivityClaim) -> None:
        now = time.monotonic()
        if len(self._confirmed) >= _MAX_CACHED:
            for key in [k for k, t in self._confirmed.items() if t <= now] or list(self._confirmed)[
                : _MAX_CACHED // 10
            ]:
                del self._confirmed[key]
        self._confirmed[claim.worker_run] = now + self._ttl

    async def _thread_of(self, execution_id: str) -> str:
        thread_id = self._threads.get(execution_id)
        if thread_id is None:
            execution = await self._db.agent_executions.get(
                execution_id, common_pb2.EXECUTION_VIEW_BASIC
            )
            session = await self._db.sessions.get(execution.session_id)
            thread_id = session.thread_id
            if not thread_id:
                return ""
            if len(self._threads) >= _MAX_CACHED:
                self._threads.clear()
            self._threads[execution_id] = thread_id
        return thread_id
