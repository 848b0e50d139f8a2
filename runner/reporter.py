"""The runner's client of the orchestrator's RunnerService."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from polyfleet.v1 import common_pb2, runner_pb2, runner_pb2_grpc
from runner.errors import ExecutionClosedError, OrchestratorUnavailableError

logger = logging.getLogger(__name__)

_RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED}
)
_T = TypeVar("_T")


class RunnerClient:
    """Calls RunnerService with retries on transient errors.

    Progress reports carry IDs, so a report retried after a lost response is
    applied once by the orchestrator.
    """

    def __init__(self, channel: grpc.aio.Channel, attempts: int = 5, timeout: float = 10.0) -> None:
        self._stub = runner_pb2_grpc.RunnerServiceStub(channel)
        self._attempts = attempts
        self._timeout = timeout

    async def _call(self, what: str, call: Callable[[], Awaitable[_T]]) -> _T:
        delay = 0.2
        for attempt in itertools.count(1):
            try:
                return await call()
            except grpc.aio.AioRpcError as err:
                if err.code() is grpc.StatusCode.FAILED_PRECONDITION:
                    raise ExecutionClosedError(err.details() or what) from err
                if err.code() not in _RETRYABLE or attempt >= self._attempts:
                    if err.code() in _RETRYABLE:
                        raise OrchestratorUnavailableError(
                            f"{what}: RunnerService unavailable after {attempt} attempts: "
                            f"{err.details()}"
                        ) from err
                    raise
                logger.warning("%s failed (%s), retrying", what, err.code().name)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    async def context(self, execution_id: str) -> runner_pb2.GetAgentExecutionContextResponse:
        """Fetch the execution, its agent and its thread history."""
        request = runner_pb2.GetAgentExecutionContextRequest(execution_id=execution_id)
        return await self._call(
            "GetAgentExecutionContext",
            lambda: self._stub.GetAgentExecutionContext(request, timeout=self._timeout),
        )

    async def workflow_context(
        self, execution_id: str
    ) -> runner_pb2.GetWorkflowExecutionContextResponse:
        """Fetch the workflow execution and its workflow."""
        request = runner_pb2.GetWorkflowExecutionContextRequest(execution_id=execution_id)
        return await self._call(
            "GetWorkflowExecutionContext",
            lambda: self._stub.GetWorkflowExecutionContext(request, timeout=self._timeout),
        )

    async def put_checkpoint(self, execution_id: str, sequence: int, data: bytes) -> None:
        """Store a workflow execution's latest checkpoint in the orchestrator."""
        request = runner_pb2.PutCheckpointRequest(
            execution_id=execution_id, sequence=sequence, data=data
        )
        await self._call(
            "PutCheckpoint", lambda: self._stub.PutCheckpoint(request, timeout=self._timeout)
        )

    async def get_checkpoint(self, execution_id: str) -> runner_pb2.GetCheckpointResponse:
        """Fetch a workflow execution's latest checkpoint."""
        request = runner_pb2.GetCheckpointRequest(execution_id=execution_id)
        return await self._call(
            "GetCheckpoint", lambda: self._stub.GetCheckpoint(request, timeout=self._timeout)
        )

    async def ensure_thread(self, execution_id: str) -> runner_pb2.EnsureThreadResponse:
        """Get or create the execution's session thread."""
        request = runner_pb2.EnsureThreadRequest(execution_id=execution_id)
        return await self._call(
            "EnsureThread", lambda: self._stub.EnsureThread(request, timeout=self._timeout)
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
            "ReportProgress", lambda: self._stub.ReportProgress(request, timeout=self._timeout)
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
            lambda: self._stub.AppendThreadMessages(request, timeout=self._timeout),
        )
