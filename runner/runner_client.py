"""The runner's client of the orchestrator's RunnerService."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from temporalio import activity

from polyfleet.v1 import common_pb2, runner_pb2, runner_pb2_grpc
from runner.errors import ExecutionClosedError, OrchestratorUnavailableError

logger = logging.getLogger(__name__)

# Codes that say "not now" rather than "no": the orchestrator is restarting or unreachable
# (UNAVAILABLE), slow (DEADLINE_EXCEEDED), or lost an optimistic-version race in its store
# (ABORTED). RESOURCE_EXHAUSTED is not among them: gRPC also uses it for a message over the
# size limit, which no retry fixes, and the orchestrator applies no rate limits of its own.
TRANSIENT_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED}
)
_T = TypeVar("_T")


def activity_time_left() -> float | None:
    """Seconds until the running activity's own deadline.

    The deadline is the earlier of start-to-close (from this attempt's start) and
    schedule-to-close (from the first attempt's schedule): past it Temporal has timed the
    activity out, so retrying a call cannot help it succeed.

    Returns:
        The seconds left (negative once passed), or None outside an activity or for an
        activity without either timeout.

    """
    if not activity.in_activity():
        return None
    info = activity.info()
    deadlines = []
    if info.start_to_close_timeout:
        deadlines.append(info.started_time + info.start_to_close_timeout)
    if info.schedule_to_close_timeout:
        deadlines.append(info.scheduled_time + info.schedule_to_close_timeout)
    if not deadlines:
        return None
    return (min(deadlines) - datetime.now(UTC)).total_seconds()


class RunnerClient:
    """Calls RunnerService, retrying transient errors until the activity's deadline.

    An orchestrator restart must not fail the executions in flight, so a call that meets
    a transient code (:data:`TRANSIENT_CODES`) is retried with capped, jittered
    exponential backoff for as long as the calling activity can still succeed (see
    :func:`activity_time_left`) or until it is cancelled; the activity's heartbeats go to
    Temporal, not to the orchestrator, so they continue meanwhile. Any other code fails
    at once. Progress reports carry IDs, so a report retried after a lost response is
    applied once by the orchestrator.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        timeout: float = 10.0,
        *,
        initial_backoff: float = 0.2,
        max_backoff: float = 5.0,
        fallback_budget: float = 60.0,
        time_left: Callable[[], float | None] = activity_time_left,
    ) -> None:
        """Create a client on ``channel``.

        Args:
            channel: A channel to the orchestrator API.
            timeout: Seconds one attempt of a call may take.
            initial_backoff: First pause between attempts, in seconds; it doubles.
            max_backoff: Longest pause between attempts, in seconds.
            fallback_budget: Seconds to keep retrying when ``time_left`` knows no deadline
                (a call made outside an activity).
            time_left: Seconds left to the caller's deadline, or None if it has none.

        """
        self._stub = runner_pb2_grpc.RunnerServiceStub(channel)
        self._timeout = timeout
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._fallback_budget = fallback_budget
        self._time_left = time_left

    async def _call(self, what: str, call: Callable[[float], Awaitable[_T]]) -> _T:
        # ``call`` takes the timeout of one attempt: never past the deadline, so the last
        # attempt does not outlive the activity.
        left = self._time_left()
        budget = self._fallback_budget if left is None else left
        start = time.monotonic()
        deadline = start + budget
        delay = self._initial_backoff
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            try:
                result = await call(max(0.001, min(self._timeout, remaining)))
            except grpc.aio.AioRpcError as err:
                code = err.code()
                if code is grpc.StatusCode.FAILED_PRECONDITION:
                    raise ExecutionClosedError(err.details() or what) from err
                if code not in TRANSIENT_CODES:
                    raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise OrchestratorUnavailableError(
                        f"{what}: RunnerService unavailable for "
                        f"{time.monotonic() - start:.1f}s ({attempt} attempts, until the "
                        f"activity's deadline): {code.name}: {err.details()}"
                    ) from err
                if attempt == 1:
                    logger.warning("%s failed (%s), retrying: %s", what, code.name, err.details())
                else:
                    logger.debug("%s attempt %d failed (%s)", what, attempt, code.name)
                # Jitter spreads the retries of many executions after a restart.
                await asyncio.sleep(min(delay * random.uniform(0.5, 1.0), remaining))
                delay = min(delay * 2, self._max_backoff)
                continue
            if attempt > 1:
                logger.info(
                    "%s succeeded after %d attempts (%.1fs)",
                    what,
                    attempt,
                    time.monotonic() - start,
                )
            return result

    async def context(self, execution_id: str) -> runner_pb2.GetAgentExecutionContextResponse:
        """Fetch the execution, its agent and its thread history."""
        request = runner_pb2.GetAgentExecutionContextRequest(execution_id=execution_id)
        return await self._call(
            "GetAgentExecutionContext",
            lambda t: self._stub.GetAgentExecutionContext(request, timeout=t),
        )

    async def workflow_context(
        self, execution_id: str
    ) -> runner_pb2.GetWorkflowExecutionContextResponse:
        """Fetch the workflow execution and its workflow."""
        request = runner_pb2.GetWorkflowExecutionContextRequest(execution_id=execution_id)
        return await self._call(
            "GetWorkflowExecutionContext",
            lambda t: self._stub.GetWorkflowExecutionContext(request, timeout=t),
        )

    async def put_checkpoint(self, execution_id: str, sequence: int, data: bytes) -> None:
        """Store a workflow execution's latest checkpoint in the orchestrator."""
        request = runner_pb2.PutCheckpointRequest(
            execution_id=execution_id, sequence=sequence, data=data
        )
        await self._call("PutCheckpoint", lambda t: self._stub.PutCheckpoint(request, timeout=t))

    async def get_checkpoint(self, execution_id: str) -> runner_pb2.GetCheckpointResponse:
        """Fetch a workflow execution's latest checkpoint."""
        request = runner_pb2.GetCheckpointRequest(execution_id=execution_id)
        return await self._call(
            "GetCheckpoint", lambda t: self._stub.GetCheckpoint(request, timeout=t)
        )

    async def ensure_thread(self, execution_id: str) -> runner_pb2.EnsureThreadResponse:
        """Get or create the execution's session thread."""
        request = runner_pb2.EnsureThreadRequest(execution_id=execution_id)
        return await self._call(
            "EnsureThread", lambda t: self._stub.EnsureThread(request, timeout=t)
        )

    async def report(
        self, execution_id: str, report_id: str, update: common_pb2.ExecutionUpdate
    ) -> runner_pb2.ReportProgressResponse:
        """Send one progress report.

        Raises:
            ExecutionClosedError: The execution is already terminal (e.g. cancelled).

        """
        request = runner_pb2.ReportProgressRequest(
            execution_id=execution_id, report_id=report_id, update=update
        )
        return await self._call(
            "ReportProgress", lambda t: self._stub.ReportProgress(request, timeout=t)
        )

    async def append_thread(
        self, thread_id: str, report_id: str, messages: list[common_pb2.Message]
    ) -> runner_pb2.AppendThreadMessagesResponse:
        """Append messages to the session's thread, once per report ID."""
        request = runner_pb2.AppendThreadMessagesRequest(
            thread_id=thread_id, report_id=report_id, messages=messages
        )
        return await self._call(
            "AppendThreadMessages",
            lambda t: self._stub.AppendThreadMessages(request, timeout=t),
        )
