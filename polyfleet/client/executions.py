"""Typed calls of the execution services: agent executions and workflow executions.

Both classes implement :class:`~polyfleet.client.watch.ExecutionCalls`, so watching and
waiting work the same way for either kind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from polyfleet.client.paging import every_page
from polyfleet.client.transport import Transport
from polyfleet.client.watch import ExecutionWatch, wait_terminal
from polyfleet.v1 import (
    agent_execution_pb2,
    agent_execution_pb2_grpc,
    common_pb2,
    workflow_execution_pb2,
    workflow_execution_pb2_grpc,
)

if TYPE_CHECKING:
    import grpc

    from polyfleet.v1.agent_execution_pb2_grpc import AgentExecutionServiceAsyncStub
    from polyfleet.v1.workflow_execution_pb2_grpc import WorkflowExecutionServiceAsyncStub

# ExecuteAgent and ExecuteWorkflow wait on the server; without a client-given wait the
# server uses its own default (60 s), never more than its limit (300 s). The call's own
# deadline adds a grace period so the server's DEADLINE_EXCEEDED, which names the
# execution, arrives first.
EXECUTE_MAX_WAIT = 300.0
EXECUTE_GRACE = 30.0

AgentExecution = agent_execution_pb2.AgentExecution
Strategy: TypeAlias = common_pb2.MultitaskStrategy.ValueType
WorkflowExecution = workflow_execution_pb2.WorkflowExecution


def _execute_deadline(wait_seconds: float | None) -> float:
    return (EXECUTE_MAX_WAIT if wait_seconds is None else wait_seconds) + EXECUTE_GRACE


class AgentExecutions:
    """AgentExecutionService: runs of an agent on one user message."""

    def __init__(self, channel: grpc.aio.Channel, transport: Transport) -> None:
        """Bind to a channel.

        Args:
            channel: The client's channel.
            transport: How calls are made.

        """
        self.stub: AgentExecutionServiceAsyncStub = (
            agent_execution_pb2_grpc.AgentExecutionServiceStub(channel)
        )
        self._rpc = transport

    @staticmethod
    def request(
        agent: str,
        message: str,
        *,
        session_id: str = "",
        labels: Mapping[str, str] | None = None,
        priority: int = 0,
        request_id: str = "",
        strategy: Strategy = common_pb2.MULTITASK_STRATEGY_UNSPECIFIED,
    ) -> agent_execution_pb2.CreateAgentExecutionRequest:
        """The Create request of an agent execution (see :meth:`create` for the fields)."""
        return agent_execution_pb2.CreateAgentExecutionRequest(
            execution=AgentExecution(
                agent=agent,
                message=message,
                session_id=session_id,
                labels=dict(labels or {}),
                priority=priority,
            ),
            request_id=request_id,
            multitask_strategy=strategy,
        )

    async def create(
        self,
        agent: str,
        message: str,
        *,
        session_id: str = "",
        labels: Mapping[str, str] | None = None,
        priority: int = 0,
        request_id: str = "",
        strategy: Strategy = common_pb2.MULTITASK_STRATEGY_UNSPECIFIED,
    ) -> AgentExecution:
        """Start an agent execution without waiting for it.

        Args:
            agent: Agent name.
            message: The user message.
            session_id: Session to continue; empty lets the server create one.
            labels: Labels of the execution.
            priority: 1 (highest) .. 5; 0 leaves the server's default (3).
            request_id: Idempotency key: a repeated one returns the original execution.
            strategy: What to do when the session is busy (default: enqueue).

        Returns:
            The new execution, normally PENDING.

        Raises:
            PolyfleetError: The API refused the request.

        """
        request = self.request(
            agent,
            message,
            session_id=session_id,
            labels=labels,
            priority=priority,
            request_id=request_id,
            strategy=strategy,
        )
        return await self.create_from(request)

    async def create_from(
        self, request: agent_execution_pb2.CreateAgentExecutionRequest
    ) -> AgentExecution:
        """Start an agent execution from a whole Create request (see :meth:`request`)."""
        return await self._rpc.unary(self.stub.CreateAgentExecution, request)

    async def execute(
        self,
        request: agent_execution_pb2.CreateAgentExecutionRequest,
        wait_seconds: float | None = None,
    ) -> AgentExecution:
        """Create and let the server wait for the terminal state (``ExecuteAgent``).

        Args:
            request: The Create request (see :meth:`request`).
            wait_seconds: How long the server waits; None leaves it to its default (60 s).

        Returns:
            The execution in its terminal phase, with its output.

        Raises:
            PolyfleetError: DEADLINE_EXCEEDED when it did not finish in time (it keeps
                running; ``execution_id`` names it), or any other failure.

        """
        execute = agent_execution_pb2.ExecuteAgentRequest(request=request)
        if wait_seconds is not None:
            execute.timeout.FromNanoseconds(round(wait_seconds * 1e9))
        deadline = _execute_deadline(wait_seconds)
        return await self._rpc.unary(self.stub.ExecuteAgent, execute, deadline=deadline)

    async def get(self, execution_id: str) -> AgentExecution:
        """Fetch one execution."""
        request = agent_execution_pb2.GetAgentExecutionRequest(id=execution_id)
        return await self._rpc.unary(self.stub.GetAgentExecution, request)

    async def cancel(self, execution_id: str) -> AgentExecution:
        """Ask for an execution to be cancelled; return it right after the request."""
        request = agent_execution_pb2.CancelAgentExecutionRequest(id=execution_id)
        return await self._rpc.unary(self.stub.CancelAgentExecution, request)

    async def list(
        self, request: agent_execution_pb2.ListAgentExecutionsRequest | None = None
    ) -> agent_execution_pb2.ListAgentExecutionsResponse:
        """Fetch one page of executions, filtered as the request says."""
        request = request or agent_execution_pb2.ListAgentExecutionsRequest()
        return await self._rpc.unary(self.stub.ListAgentExecutions, request)

    def list_all(
        self, request: agent_execution_pb2.ListAgentExecutionsRequest | None = None
    ) -> AsyncIterator[AgentExecution]:
        """Every execution the request's filters select, following page tokens."""
        base = request or agent_execution_pb2.ListAgentExecutionsRequest()

        async def page(token: str) -> tuple[Iterable[AgentExecution], str]:
            paged = agent_execution_pb2.ListAgentExecutionsRequest()
            paged.CopyFrom(base)
            paged.page_token = token
            response = await self.list(paged)
            return response.executions, response.next_page_token

        return every_page(page)

    async def events(
        self, execution_id: str, after_sequence: int = 0
    ) -> AsyncIterator[common_pb2.ExecutionEvent]:
        """One Watch stream's events after a sequence number, without resuming.

        The snapshot is skipped: the events after ``after_sequence`` are what is wanted.
        Use :meth:`watch` to resume across broken streams.
        """
        request = agent_execution_pb2.WatchAgentExecutionRequest(
            id=execution_id, after_sequence=after_sequence
        )
        async for response in self._rpc.stream(self.stub.WatchAgentExecution, request):
            if response.HasField("event"):
                yield response.event

    def watch(self, execution_id: str, after_sequence: int = 0) -> ExecutionWatch[AgentExecution]:
        """Follow an execution's events until it ends, resuming after a broken stream."""
        return ExecutionWatch(self, execution_id, after_sequence)

    async def wait(
        self,
        execution_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - named as in Temporal's SDK
        *,
        poll_interval: float | None = None,
    ) -> AgentExecution:
        """Wait until the execution is terminal (see ``wait_terminal``)."""
        return await wait_terminal(self, execution_id, timeout, poll_interval=poll_interval)


class WorkflowExecutions:
    """WorkflowExecutionService: runs of a workflow document."""

    def __init__(self, channel: grpc.aio.Channel, transport: Transport) -> None:
        """Bind to a channel.

        Args:
            channel: The client's channel.
            transport: How calls are made.

        """
        self.stub: WorkflowExecutionServiceAsyncStub = (
            workflow_execution_pb2_grpc.WorkflowExecutionServiceStub(channel)
        )
        self._rpc = transport

    @staticmethod
    def request(
        workflow: str,
        workflow_input: Mapping[str, Any] | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        priority: int = 0,
        request_id: str = "",
    ) -> workflow_execution_pb2.CreateWorkflowExecutionRequest:
        """The Create request of a workflow execution (see :meth:`create` for the fields)."""
        execution = WorkflowExecution(
            workflow=workflow, labels=dict(labels or {}), priority=priority
        )
        if workflow_input is not None:
            execution.input.SetInParent()
            execution.input.update(workflow_input)
        return workflow_execution_pb2.CreateWorkflowExecutionRequest(
            execution=execution, request_id=request_id
        )

    async def create(
        self,
        workflow: str,
        workflow_input: Mapping[str, Any] | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        priority: int = 0,
        request_id: str = "",
    ) -> WorkflowExecution:
        """Start a workflow execution without waiting for it.

        Args:
            workflow: Workflow name.
            workflow_input: The workflow's input (a JSON object); None sends none.
            labels: Labels of the execution.
            priority: 1 (highest) .. 5; 0 leaves the server's default (3).
            request_id: Idempotency key: a repeated one returns the original execution.

        Returns:
            The new execution, normally PENDING.

        Raises:
            PolyfleetError: The API refused the request.

        """
        request = self.request(
            workflow, workflow_input, labels=labels, priority=priority, request_id=request_id
        )
        return await self.create_from(request)

    async def create_from(
        self, request: workflow_execution_pb2.CreateWorkflowExecutionRequest
    ) -> WorkflowExecution:
        """Start a workflow execution from a whole Create request (see :meth:`request`)."""
        return await self._rpc.unary(self.stub.CreateWorkflowExecution, request)

    async def execute(
        self,
        request: workflow_execution_pb2.CreateWorkflowExecutionRequest,
        wait_seconds: float | None = None,
    ) -> WorkflowExecution:
        """Create and let the server wait for the terminal state (``ExecuteWorkflow``).

        Args:
            request: The Create request (see :meth:`request`).
            wait_seconds: How long the server waits; None leaves it to its default (60 s).

        Returns:
            The execution in its terminal phase, with its output.

        Raises:
            PolyfleetError: DEADLINE_EXCEEDED when it did not finish in time (it keeps
                running; ``execution_id`` names it), or any other failure.

        """
        execute = workflow_execution_pb2.ExecuteWorkflowRequest(request=request)
        if wait_seconds is not None:
            execute.timeout.FromNanoseconds(round(wait_seconds * 1e9))
        deadline = _execute_deadline(wait_seconds)
        return await self._rpc.unary(self.stub.ExecuteWorkflow, execute, deadline=deadline)

    async def get(self, execution_id: str) -> WorkflowExecution:
        """Fetch one execution."""
        request = workflow_execution_pb2.GetWorkflowExecutionRequest(id=execution_id)
        return await self._rpc.unary(self.stub.GetWorkflowExecution, request)

    async def cancel(self, execution_id: str) -> WorkflowExecution:
        """Ask for an execution to be cancelled; return it right after the request."""
        request = workflow_execution_pb2.CancelWorkflowExecutionRequest(id=execution_id)
        return await self._rpc.unary(self.stub.CancelWorkflowExecution, request)

    async def list(
        self, request: workflow_execution_pb2.ListWorkflowExecutionsRequest | None = None
    ) -> workflow_execution_pb2.ListWorkflowExecutionsResponse:
        """Fetch one page of executions, filtered as the request says."""
        request = request or workflow_execution_pb2.ListWorkflowExecutionsRequest()
        return await self._rpc.unary(self.stub.ListWorkflowExecutions, request)

    def list_all(
        self, request: workflow_execution_pb2.ListWorkflowExecutionsRequest | None = None
    ) -> AsyncIterator[WorkflowExecution]:
        """Every execution the request's filters select, following page tokens."""
        base = request or workflow_execution_pb2.ListWorkflowExecutionsRequest()

        async def page(token: str) -> tuple[Iterable[WorkflowExecution], str]:
            paged = workflow_execution_pb2.ListWorkflowExecutionsRequest()
            paged.CopyFrom(base)
            paged.page_token = token
            response = await self.list(paged)
            return response.executions, response.next_page_token

        return every_page(page)

    async def events(
        self, execution_id: str, after_sequence: int = 0
    ) -> AsyncIterator[common_pb2.ExecutionEvent]:
        """One Watch stream's events after a sequence number, without resuming."""
        request = workflow_execution_pb2.WatchWorkflowExecutionRequest(
            id=execution_id, after_sequence=after_sequence
        )
        async for response in self._rpc.stream(self.stub.WatchWorkflowExecution, request):
            if response.HasField("event"):
                yield response.event

    def watch(
        self, execution_id: str, after_sequence: int = 0
    ) -> ExecutionWatch[WorkflowExecution]:
        """Follow an execution's events until it ends, resuming after a broken stream."""
        return ExecutionWatch(self, execution_id, after_sequence)

    async def wait(
        self,
        execution_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - named as in Temporal's SDK
        *,
        poll_interval: float | None = None,
    ) -> WorkflowExecution:
        """Wait until the execution is terminal (see ``wait_terminal``)."""
        return await wait_terminal(self, execution_id, timeout, poll_interval=poll_interval)
