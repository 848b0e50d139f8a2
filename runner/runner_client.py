"""The runner's client of the orchestrator's RunnerService."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from google.protobuf import struct_pb2
from temporalio import activity

from polyfleet import contract
from polyfleet.telemetry import tracing
from polyfleet.v1 import (
    agent_execution_pb2,
    common_pb2,
    event_pb2,
    runner_pb2,
    runner_pb2_grpc,
    workflow_execution_pb2,
)
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
_Req = TypeVar("_Req")
# The response of a child's Watch: a snapshot, then events.
_WatchResponse = TypeVar(
    "_WatchResponse",
    agent_execution_pb2.WatchAgentExecutionResponse,
    workflow_execution_pb2.WatchWorkflowExecutionResponse,
)


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


def activity_claim() -> tuple[tuple[str, str], ...]:
    """Which attempt of which activity this runner is running, as call metadata.

    With its worker identity, so the orchestrator can let a RunnerService call touch only
    that activity's execution once Temporal confirms the claim (docs/contract.md,
    "RunnerService"). Empty outside an activity.
    """
    if not activity.in_activity():
        return ()
    info = activity.info()
    return (
        (contract.RUNNER_METADATA_WORKFLOW_ID, info.workflow_id or ""),
        (contract.RUNNER_METADATA_RUN_ID, info.workflow_run_id or ""),
        (contract.RUNNER_METADATA_ACTIVITY_ID, info.activity_id),
        (contract.RUNNER_METADATA_ATTEMPT, str(info.attempt)),
        (contract.RUNNER_METADATA_WORKER_IDENTITY, activity.client().identity),
    )


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
        metadata: tuple[tuple[str, str], ...] = (),
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
            metadata: Sent with every call (the bearer token, which is not on the channel).

        """
        self._stub = runner_pb2_grpc.RunnerServiceStub(channel)
        self._timeout = timeout
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._fallback_budget = fallback_budget
        self._time_left = time_left
        self._base_metadata = metadata

    async def _call(
        self, what: str, call: Callable[[float, tuple[tuple[str, str], ...]], Awaitable[_T]]
    ) -> _T:
        # ``call`` takes the timeout of one attempt (never past the deadline, so the last
        # attempt does not outlive the activity) and the call's metadata.
        metadata = self.metadata()
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
                result = await call(max(0.001, min(self._timeout, remaining)), metadata)
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
            lambda t, m: self._stub.GetAgentExecutionContext(request, timeout=t, metadata=m),
        )

    async def workflow_context(
        self, execution_id: str
    ) -> runner_pb2.GetWorkflowExecutionContextResponse:
        """Fetch the workflow execution and its workflow."""
        request = runner_pb2.GetWorkflowExecutionContextRequest(execution_id=execution_id)
        return await self._call(
            "GetWorkflowExecutionContext",
            lambda t, m: self._stub.GetWorkflowExecutionContext(request, timeout=t, metadata=m),
        )

    async def put_checkpoint(self, execution_id: str, sequence: int, data: bytes) -> None:
        """Store a workflow execution's latest checkpoint in the orchestrator."""
        request = runner_pb2.PutCheckpointRequest(
            execution_id=execution_id, sequence=sequence, data=data
        )
        await self._call(
            "PutCheckpoint", lambda t, m: self._stub.PutCheckpoint(request, timeout=t, metadata=m)
        )

    async def get_checkpoint(self, execution_id: str) -> runner_pb2.GetCheckpointResponse:
        """Fetch a workflow execution's latest checkpoint."""
        request = runner_pb2.GetCheckpointRequest(execution_id=execution_id)
        return await self._call(
            "GetCheckpoint", lambda t, m: self._stub.GetCheckpoint(request, timeout=t, metadata=m)
        )

    async def ensure_thread(self, execution_id: str) -> runner_pb2.EnsureThreadResponse:
        """Get or create the execution's session thread."""
        request = runner_pb2.EnsureThreadRequest(execution_id=execution_id)
        return await self._call(
            "EnsureThread", lambda t, m: self._stub.EnsureThread(request, timeout=t, metadata=m)
        )

    async def report(
        self,
        execution_id: str,
        report_id: str,
        update: common_pb2.ExecutionUpdate,
        thread_append: runner_pb2.AppendThreadMessagesRequest | None = None,
    ) -> runner_pb2.ReportProgressResponse:
        """Send one progress report, with messages for the thread riding on it if given.

        Raises:
            ExecutionClosedError: The execution is already terminal (e.g. cancelled).

        """
        request = runner_pb2.ReportProgressRequest(
            execution_id=execution_id,
            report_id=report_id,
            update=update,
            thread_append=thread_append,
        )
        return await self._call(
            "ReportProgress", lambda t, m: self._stub.ReportProgress(request, timeout=t, metadata=m)
        )

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata every RunnerService call carries (streams pass it explicitly).

        The bearer token on a plaintext channel (over TLS it rides as call credentials),
        inside an activity :func:`activity_claim`, and the trace context (W3C
        ``traceparent``), so the orchestrator's span of the call joins the execution's trace.
        """
        return (*self._base_metadata, *activity_claim(), *tracing.inject_metadata())

    async def _unary(
        self, what: str, method: grpc.aio.UnaryUnaryMultiCallable[_Req, _T], request: _Req
    ) -> _T:
        """One unary call of RunnerService, retried as :meth:`_call` does."""
        return await self._call(what, lambda t, m: method(request, timeout=t, metadata=m))

    async def _snapshot(
        self,
        what: str,
        watch: grpc.aio.UnaryStreamMultiCallable[_Req, _WatchResponse],
        request: _Req,
        child_execution_id: str,
    ) -> _WatchResponse:
        """The response that carries a Watch's snapshot (its first), retried as a call."""

        async def first(seconds: float, metadata: tuple[tuple[str, str], ...]) -> _WatchResponse:
            call = watch(request, timeout=seconds, metadata=metadata)
            try:
                async for response in call:
                    if response.HasField("snapshot"):
                        return response
            finally:
                call.cancel()
            raise OrchestratorUnavailableError(
                f"{what} of {child_execution_id} ended without a snapshot"
            )

        return await self._call(what, first)

    async def _stream(
        self, watch: grpc.aio.UnaryStreamMultiCallable[_Req, _T], request: _Req
    ) -> AsyncIterator[_T]:
        """One Watch stream, without retries (the caller resumes it)."""
        call = watch(request, metadata=self.metadata())
        try:
            async for response in call:
                yield response
        finally:
            call.cancel()

    async def create_child(
        self, execution_id: str, task_id: str, agent: str, message: str, request_id: str
    ) -> agent_execution_pb2.AgentExecution:
        """Create the child agent execution of workflow execution ``execution_id``'s task.

        Raises:
            ExecutionClosedError: The parent is terminal.

        """
        request = runner_pb2.CreateChildAgentExecutionRequest(
            execution_id=execution_id,
            task_id=task_id,
            agent=agent,
            message=message,
            request_id=request_id,
        )
        return await self._unary(
            "CreateChildAgentExecution", self._stub.CreateChildAgentExecution, request
        )

    async def cancel_child(
        self, execution_id: str, child_execution_id: str
    ) -> agent_execution_pb2.AgentExecution:
        """Ask for a child agent execution of ``execution_id`` to be cancelled."""
        request = runner_pb2.CancelChildAgentExecutionRequest(
            execution_id=execution_id, child_execution_id=child_execution_id
        )
        return await self._unary(
            "CancelChildAgentExecution", self._stub.CancelChildAgentExecution, request
        )

    async def get_child(
        self, execution_id: str, child_execution_id: str
    ) -> agent_execution_pb2.AgentExecution:
        """Read a child agent execution of ``execution_id``: its Watch's snapshot."""
        request = runner_pb2.WatchChildAgentExecutionRequest(
            execution_id=execution_id, child_execution_id=child_execution_id
        )
        watch = self._stub.WatchChildAgentExecution
        response = await self._snapshot(
            "WatchChildAgentExecution", watch, request, child_execution_id
        )
        return response.snapshot

    def watch_child(
        self, execution_id: str, child_execution_id: str, after_sequence: int = 0
    ) -> AsyncIterator[agent_execution_pb2.WatchAgentExecutionResponse]:
        """One WatchChildAgentExecution stream, without retries (the caller resumes it)."""
        request = runner_pb2.WatchChildAgentExecutionRequest(
            execution_id=execution_id,
            child_execution_id=child_execution_id,
            after_sequence=after_sequence,
        )
        return self._stream(self._stub.WatchChildAgentExecution, request)

    async def create_child_workflow(
        self,
        execution_id: str,
        task_id: str,
        workflow: tuple[str, str, str],
        workflow_input: struct_pb2.Struct,
        request_id: str,
    ) -> workflow_execution_pb2.WorkflowExecution:
        """Create the child workflow execution of ``execution_id``'s `run: workflow` task.

        ``workflow`` is (name, version, namespace); an empty version or namespace is not
        checked.

        Raises:
            ExecutionClosedError: The parent is terminal.

        """
        name, version, namespace = workflow
        request = runner_pb2.CreateChildWorkflowExecutionRequest(
            execution_id=execution_id,
            task_id=task_id,
            workflow=name,
            version=version,
            namespace=namespace,
            input=workflow_input,
            request_id=request_id,
        )
        return await self._unary(
            "CreateChildWorkflowExecution", self._stub.CreateChildWorkflowExecution, request
        )

    async def cancel_child_workflow(
        self, execution_id: str, child_execution_id: str
    ) -> workflow_execution_pb2.WorkflowExecution:
        """Ask for a child workflow execution of ``execution_id`` to be cancelled."""
        request = runner_pb2.CancelChildWorkflowExecutionRequest(
            execution_id=execution_id, child_execution_id=child_execution_id
        )
        return await self._unary(
            "CancelChildWorkflowExecution", self._stub.CancelChildWorkflowExecution, request
        )

    async def get_child_workflow(
        self, execution_id: str, child_execution_id: str
    ) -> workflow_execution_pb2.WorkflowExecution:
        """Read a child workflow execution of ``execution_id``: its Watch's snapshot."""
        request = runner_pb2.WatchChildWorkflowExecutionRequest(
            execution_id=execution_id, child_execution_id=child_execution_id
        )
        watch = self._stub.WatchChildWorkflowExecution
        response = await self._snapshot(
            "WatchChildWorkflowExecution", watch, request, child_execution_id
        )
        return response.snapshot

    def watch_child_workflow(
        self, execution_id: str, child_execution_id: str, after_sequence: int = 0
    ) -> AsyncIterator[workflow_execution_pb2.WatchWorkflowExecutionResponse]:
        """One WatchChildWorkflowExecution stream, without retries (the caller resumes it)."""
        request = runner_pb2.WatchChildWorkflowExecutionRequest(
            execution_id=execution_id,
            child_execution_id=child_execution_id,
            after_sequence=after_sequence,
        )
        return self._stream(self._stub.WatchChildWorkflowExecution, request)

    async def emit_event(
        self, execution_id: str, task_id: str, attempt: int, event: event_pb2.CloudEvent
    ) -> event_pb2.EmitEventResponse:
        """Publish the event of an `emit` task (its id defaults to one per task attempt)."""
        request = event_pb2.EmitEventRequest(
            execution_id=execution_id, task_id=task_id, attempt=attempt, event=event
        )
        return await self._call(
            "EmitEvent", lambda t, m: self._stub.EmitEvent(request, timeout=t, metadata=m)
        )

    async def receive_events(
        self, execution_id: str, after_sequence: int, wait: float
    ) -> event_pb2.ReceiveEventsResponse:
        """Events a `listen` task may consume, waiting up to ``wait`` seconds for one."""
        request = event_pb2.ReceiveEventsRequest(
            execution_id=execution_id,
            after_sequence=after_sequence,
            wait_millis=int(wait * 1000),
        )
        # The orchestrator holds the call up to ``wait``: the attempt's deadline covers it.
        return await self._call(
            "ReceiveEvents",
            lambda t, m: self._stub.ReceiveEvents(request, timeout=t + wait, metadata=m),
        )
