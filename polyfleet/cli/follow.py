"""Following, waiting for and cancelling executions of either kind, chosen by ID prefix.

Agent executions (``aex-…``) and workflow executions (``wex-…``) have the same lifecycle
and the same event log, so one watch loop, one printer and one wait serve both: the
difference is only which service is asked, behind :class:`ExecutionCalls`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol, TextIO, TypeVar

import grpc

from polyfleet.cli import api
from polyfleet.cli.errors import CliError
from polyfleet.cli.output import Execution, is_terminal, phase_name
from polyfleet.cli.progress import ProgressPrinter
from polyfleet.v1 import agent_execution_pb2, common_pb2, workflow_execution_pb2

if TYPE_CHECKING:
    from polyfleet.v1.agent_execution_pb2_grpc import AgentExecutionServiceAsyncStub
    from polyfleet.v1.workflow_execution_pb2_grpc import WorkflowExecutionServiceAsyncStub

logger = logging.getLogger(__name__)

# A watch that drops (orchestrator restart, network blip) resumes from the last event
# seen, so nothing is lost; these bound how long it keeps trying.
WATCH_RECONNECTS = 6
WATCH_BACKOFF_SECONDS = 0.5
_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL})
# How often a wait for a terminal phase looks at the execution.
POLL_INTERVAL = 0.25
# The API's ID prefixes tell the two kinds of execution apart.
WORKFLOW_EXECUTION_PREFIX = "wex-"

_E = TypeVar("_E", bound=Execution)
_E_co = TypeVar("_E_co", bound=Execution, covariant=True)


class ExecutionCalls(Protocol[_E_co]):
    """The calls that read, follow and cancel one kind of execution."""

    async def get(self, execution_id: str) -> _E_co:
        """Fetch one execution."""
        ...

    async def cancel(self, execution_id: str) -> _E_co:
        """Ask for an execution to be cancelled; return it right after the request."""
        ...

    def events(
        self, execution_id: str, after_sequence: int
    ) -> AsyncIterator[common_pb2.ExecutionEvent]:
        """Stream the execution's events after a sequence number, until the stream ends."""
        ...


def calls_for(clients: api.Clients, execution_id: str) -> ExecutionCalls[Execution]:
    """Pick the service of an execution by its ID's prefix.

    Args:
        clients: Stubs of the API.
        execution_id: ``wex-…`` for a workflow execution; anything else is taken for an
            agent execution (``aex-…``), whose service reports unknown IDs.

    Returns:
        The calls of that kind.

    """
    if is_workflow_execution(execution_id):
        return WorkflowExecutionCalls(clients.workflow_executions)
    return AgentExecutionCalls(clients.executions)


def is_workflow_execution(execution_id: str) -> bool:
    """Tell a workflow execution's ID (``wex-…``) from an agent execution's (``aex-…``).

    Args:
        execution_id: An execution ID.

    Returns:
        True for a workflow execution.

    """
    return execution_id.startswith(WORKFLOW_EXECUTION_PREFIX)


class AgentExecutionCalls:
    """:class:`ExecutionCalls` of AgentExecutionService."""

    def __init__(self, stub: AgentExecutionServiceAsyncStub) -> None:
        """Wrap a stub.

        Args:
            stub: AgentExecutionService stub.

        """
        self._stub = stub

    async def get(self, execution_id: str) -> agent_execution_pb2.AgentExecution:
        """Fetch one execution."""
        return await api.get_agent_execution(self._stub, execution_id)

    async def cancel(self, execution_id: str) -> agent_execution_pb2.AgentExecution:
        """Ask for an execution to be cancelled; return it right after the request."""
        return await self._stub.CancelAgentExecution(
            agent_execution_pb2.CancelAgentExecutionRequest(id=execution_id),
            timeout=api.UNARY_TIMEOUT,
        )

    async def events(
        self, execution_id: str, after_sequence: int
    ) -> AsyncIterator[common_pb2.ExecutionEvent]:
        """Stream the execution's events after a sequence number, until the stream ends."""
        request = agent_execution_pb2.WatchAgentExecutionRequest(
            id=execution_id, after_sequence=after_sequence
        )
        async for response in self._stub.WatchAgentExecution(request):
            # The snapshot is skipped: the events after `after_sequence` are what is wanted,
            # and rendering the snapshot's status too would show its content twice.
            if response.HasField("event"):
                yield response.event


class WorkflowExecutionCalls:
    """:class:`ExecutionCalls` of WorkflowExecutionService."""

    def __init__(self, stub: WorkflowExecutionServiceAsyncStub) -> None:
        """Wrap a stub.

        Args:
            stub: WorkflowExecutionService stub.

        """
        self._stub = stub

    async def get(self, execution_id: str) -> workflow_execution_pb2.WorkflowExecution:
        """Fetch one execution."""
        return await self._stub.GetWorkflowExecution(
            workflow_execution_pb2.GetWorkflowExecutionRequest(id=execution_id),
            timeout=api.UNARY_TIMEOUT,
        )

    async def cancel(self, execution_id: str) -> workflow_execution_pb2.WorkflowExecution:
        """Ask for an execution to be cancelled; return it right after the request."""
        return await self._stub.CancelWorkflowExecution(
            workflow_execution_pb2.CancelWorkflowExecutionRequest(id=execution_id),
            timeout=api.UNARY_TIMEOUT,
        )

    async def events(
        self, execution_id: str, after_sequence: int
    ) -> AsyncIterator[common_pb2.ExecutionEvent]:
        """Stream the execution's events after a sequence number, until the stream ends."""
        request = workflow_execution_pb2.WatchWorkflowExecutionRequest(
            id=execution_id, after_sequence=after_sequence
        )
        async for response in self._stub.WatchWorkflowExecution(request):
            if response.HasField("event"):
                yield response.event


async def wait_until_terminal(
    calls: ExecutionCalls[_E], execution_id: str, limit_seconds: float
) -> _E:
    """Poll an execution until it reaches a terminal phase.

    Args:
        calls: The calls of the execution's kind (see :func:`calls_for`).
        execution_id: Its ID.
        limit_seconds: Give up after this long.

    Returns:
        The execution in its terminal phase.

    Raises:
        CliError: It was not terminal within ``limit_seconds``.

    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_seconds
    while True:
        execution = await calls.get(execution_id)
        if is_terminal(execution.status.phase):
            return execution
        if loop.time() >= deadline:
            phase = phase_name(execution.status.phase)
            raise CliError(
                f"execution {execution_id} is still {phase} after {limit_seconds:g} s",
                hint=f"follow it with: polyfleet executions watch {execution_id}",
            )
        await asyncio.sleep(POLL_INTERVAL)


async def watch_agent_execution(
    stub: AgentExecutionServiceAsyncStub,
    execution_id: str,
    printer: ProgressPrinter,
    *,
    after_sequence: int = 0,
) -> agent_execution_pb2.AgentExecution:
    """Render an agent execution's progress live until it ends (see :func:`watch_execution`).

    Args:
        stub: AgentExecutionService stub.
        execution_id: The execution to follow.
        printer: Receives every event and finally the outcome.
        after_sequence: Render only events after this sequence number.

    Returns:
        The execution in its terminal phase.

    """
    calls = AgentExecutionCalls(stub)
    return await watch_execution(calls, execution_id, printer, after_sequence=after_sequence)


async def watch_execution(
    calls: ExecutionCalls[_E],
    execution_id: str,
    printer: ProgressPrinter,
    *,
    after_sequence: int = 0,
) -> _E:
    """Render an execution's progress live until it reaches a terminal phase.

    The watch resumes after the last event seen when the stream breaks, so a restart of
    the orchestrator neither loses nor repeats output.

    Args:
        calls: The calls of the execution's kind (see :func:`calls_for`).
        execution_id: The execution to follow.
        printer: Receives every event and finally the outcome.
        after_sequence: Render only events after this sequence number.

    Returns:
        The execution in its terminal phase.

    Raises:
        grpc.aio.AioRpcError: A call failed in a way retrying does not fix.
        CliError: The watch kept breaking before the execution finished.

    """
    sequence = after_sequence
    failures = 0
    while True:
        try:
            async for event in calls.events(execution_id, sequence):
                printer.event(event)
                sequence = max(sequence, event.sequence)
                failures = 0
            execution = await calls.get(execution_id)
            if is_terminal(execution.status.phase):
                printer.finish(execution)
                return execution
            problem = "the watch ended before the execution finished"
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in _RETRYABLE:
                printer.end_line()
                raise
            problem = f"{exc.code().name}: {exc.details()}"
        failures += 1
        if failures > WATCH_RECONNECTS:
            printer.end_line()
            raise CliError(f"gave up watching {execution_id}: {problem}")
        logger.info("watch of %s broke (%s); resuming after %d", execution_id, problem, sequence)
        await asyncio.sleep(WATCH_BACKOFF_SECONDS * 2 ** (failures - 1))


async def follow(
    calls: ExecutionCalls[_E],
    execution_id: str,
    printer: ProgressPrinter,
    err: TextIO,
    *,
    after_sequence: int = 0,
) -> _E:
    """Watch an execution as :func:`watch_execution` does, for a command's foreground.

    Args:
        calls: The calls of the execution's kind (see :func:`calls_for`).
        execution_id: The execution to follow.
        printer: Receives every event and finally the outcome.
        err: Where to say, on Ctrl-C, how to pick the watch up again.
        after_sequence: Render only events after this sequence number.

    Returns:
        The execution in its terminal phase.

    """
    try:
        return await watch_execution(calls, execution_id, printer, after_sequence=after_sequence)
    except asyncio.CancelledError:
        # Ctrl-C stops watching, not the execution; say how to pick it up again.
        printer.end_line()
        print(
            f"stopped watching; {execution_id} keeps running "
            f"(polyfleet executions watch {execution_id})",
            file=err,
        )
        raise
