"""Typed calls of the execution services: agent executions and workflow executions.

Both kinds share one implementation, :class:`Executions`; each kind's subclass adds the
Create request of its kind and names its service's methods. Both implement
:class:`~polyfleet.client.watch.ExecutionCalls`, so watching and waiting work the same way
for either kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeAlias, TypeVar

from google.protobuf.duration_pb2 import Duration

from polyfleet.client.paging import every_page
from polyfleet.client.transport import Transport
from polyfleet.client.watch import ExecutionWatch, wait_terminal
from polyfleet.contract import Execution
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

_E_co = TypeVar("_E_co", bound=Execution, covariant=True)


class _ListResponse(Protocol[_E_co]):
    """What paging reads of a List response."""

    @property
    def executions(self) -> Sequence[_E_co]: ...

    @property
    def next_page_token(self) -> str: ...


# The kind's execution, its Create request, List request and List response.
E = TypeVar("E", bound=Execution)
C = TypeVar(
    "C",
    agent_execution_pb2.CreateAgentExecutionRequest,
    workflow_execution_pb2.CreateWorkflowExecutionRequest,
)
L = TypeVar(
    "L",
    agent_execution_pb2.ListAgentExecutionsRequest,
    workflow_execution_pb2.ListWorkflowExecutionsRequest,
)
R = TypeVar("R", bound=_ListResponse[Any])
_WatchResponse: TypeAlias = (
    agent_execution_pb2.WatchAgentExecutionResponse
    | workflow_execution_pb2.WatchWorkflowExecutionResponse
)


def _execute_deadline(wait_seconds: float | None) -> float:
    return (EXECUTE_MAX_WAIT if wait_seconds is None else wait_seconds) + EXECUTE_GRACE


class Executions(ABC, Generic[E, C, L, R]):
    """The calls of one execution service, the same for either kind.

    A subclass per kind sets ``_list_request`` and overrides the hooks that name its
    service's methods and request messages; it adds ``request`` and ``create``, whose
    fields differ by kind.
    """

    # The kind's List request message.
    _list_request: type[L]

    def __init__(self, transport: Transport) -> None:
        """Make the calls through ``transport``."""
        self._rpc = transport

    # --- the kind's service methods -------------------------------------------------------

    @abstractmethod
    def _create(self, request: C) -> Awaitable[E]: ...

    @abstractmethod
    def _execute(self, request: C, timeout: Duration | None, deadline: float) -> Awaitable[E]: ...

    @abstractmethod
    def _get(self, execution_id: str) -> Awaitable[E]: ...

    @abstractmethod
    def _cancel(self, execution_id: str) -> Awaitable[E]: ...

    @abstractmethod
    def _list(self, request: L) -> Awaitable[R]: ...

    @abstractmethod
    def _watch(self, execution_id: str, after_sequence: int) -> AsyncIterator[_WatchResponse]: ...

    # --- the calls ------------------------------------------------------------------------

    async def create_from(self, request: C) -> E:
        """Start an execution from a whole Create request (see ``request``)."""
        return await self._create(request)

    async def execute(self, request: C, wait_seconds: float | None = None) -> E:
        """Create and let the server wait for the terminal state (``ExecuteAgent``/``Workflow``).

        Args:
            request: The Create request (see ``request``).
            wait_seconds: How long the server waits; None leaves it to its default (60 s).

        Returns:
            The execution in its terminal phase, with its output.

        Raises:
            PolyfleetError: DEADLINE_EXCEEDED when it did not finish in time (it keeps
                running; ``execution_id`` names it), or any other failure.

        """
        timeout = None
        if wait_seconds is not None:
            timeout = Duration()
            timeout.FromNanoseconds(round(wait_seconds * 1e9))
        return await self._execute(request, timeout, _execute_deadline(wait_seconds))

    async def get(self, execution_id: str) -> E:
        """Fetch one execution."""
        return await self._get(execution_id)

    async def cancel(self, execution_id: str) -> E:
        """Ask for an execution to be cancelled; return it right after the request."""
        return await self._cancel(execution_id)

    async def list(self, request: L | None = None) -> R:
        """Fetch one page of executions, filtered as the request says."""
        return await self._list(request or self._list_request())

    def list_all(self, request: L | None = None) -> AsyncIterator[E]:
        """Every execution the request's filters select, following page tokens."""
        base = request or self._list_request()

        async def page(token: str) -> tuple[Iterable[E], str]:
            paged = self._list_request()
            paged.CopyFrom(base)
            paged.page_token = token
            response: _ListResponse[E] = await self.list(paged)
            return response.executions, response.next_page_token

        return every_page(page)

    async def events(
        self, execution_id: str, after_sequence: int = 0
    ) -> AsyncIterator[common_pb2.ExecutionEvent]:
        """One Watch stream's events after a sequence number, without resuming.

        The snapshot is skipped: the events after ``after_sequence`` are what is wanted.
        Use :meth:`watch` to resume across broken streams.
        """
        async for response in self._watch(execution_id, after_sequence):
            if response.HasField("event"):
                yield response.event

    def watch(self, execution_id: str, after_sequence: int = 0) -> ExecutionWatch[E]:
        """Follow an execution's events until it ends, resuming after a broken stream."""
        return ExecutionWatch(self, execution_id, after_sequence)

    async def wait(
        self,
        execution_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - named as in Temporal's SDK
        *,
        poll_interval: float | None = None,
    ) -> E:
        """Wait until the execution is terminal (see ``wait_terminal``)."""
        return await wait_terminal(self, execution_id, timeout, poll_interval=poll_interval)


class AgentExecutions(
    Executions[
        AgentExecution,
        agent_execution_pb2.CreateAgentExecutionRequest,
        agent_execution_pb2.ListAgentExecutionsRequest,
        agent_execution_pb2.ListAgentExecutionsResponse,
    ]
):
    """AgentExecutionService: runs of an agent on one user message."""

    _list_request = agent_execution_pb2.ListAgentExecutionsRequest

    def __init__(self, channel: grpc.aio.Channel, transport: Transport) -> None:
        """Bind to a channel.

        Args:
            channel: The client's channel.
            transport: How calls are made.

        """
        super().__init__(transport)
        self.stub: AgentExecutionServiceAsyncStub = (
            agent_execution_pb2_grpc.AgentExecutionServiceStub(channel)
        )

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

    def _create(
        self, request: agent_execution_pb2.CreateAgentExecutionRequest
    ) -> Awaitable[AgentExecution]:
        return self._rpc.unary(self.stub.CreateAgentExecution, request)

    def _execute(
        self,
        request: agent_execution_pb2.CreateAgentExecutionRequest,
        timeout: Duration | None,
        deadline: float,
    ) -> Awaitable[AgentExecution]:
        execute = agent_execution_pb2.ExecuteAgentRequest(request=request, timeout=timeout)
        return self._rpc.unary(self.stub.ExecuteAgent, execute, deadline=deadline)

    def _get(self, execution_id: str) -> Awaitable[AgentExecution]:
        request = agent_execution_pb2.GetAgentExecutionRequest(id=execution_id)
        return self._rpc.unary(self.stub.GetAgentExecution, request)

    def _cancel(self, execution_id: str) -> Awaitable[AgentExecution]:
        request = agent_execution_pb2.CancelAgentExecutionRequest(id=execution_id)
        return self._rpc.unary(self.stub.CancelAgentExecution, request)

    def _list(
        self, request: agent_execution_pb2.ListAgentExecutionsRequest
    ) -> Awaitable[agent_execution_pb2.ListAgentExecutionsResponse]:
        return self._rpc.unary(self.stub.ListAgentExecutions, request)

    def _watch(
        self, execution_id: str, after_sequence: int
    ) -> AsyncIterator[agent_execution_pb2.WatchAgentExecutionResponse]:
        request = agent_execution_pb2.WatchAgentExecutionRequest(
            id=execution_id, after_sequence=after_sequence
        )
        return self._rpc.stream(self.stub.WatchAgentExecution, request)


class WorkflowExecutions(
    Executions[
        WorkflowExecution,
        workflow_execution_pb2.CreateWorkflowExecutionRequest,
        workflow_execution_pb2.ListWorkflowExecutionsRequest,
        workflow_execution_pb2.ListWorkflowExecutionsResponse,
    ]
):
    """WorkflowExecutionService: runs of a workflow document."""

    _list_request = workflow_execution_pb2.ListWorkflowExecutionsRequest

    def __init__(self, channel: grpc.aio.Channel, transport: Transport) -> None:
        """Bind to a channel.

        Args:
            channel: The client's channel.
            transport: How calls are made.

        """
        super().__init__(transport)
        self.stub: WorkflowExecutionServiceAsyncStub = (
            workflow_execution_pb2_grpc.WorkflowExecutionServiceStub(channel)
        )

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

    def _create(
        self, request: workflow_execution_pb2.CreateWorkflowExecutionRequest
    ) -> Awaitable[WorkflowExecution]:
        return self._rpc.unary(self.stub.CreateWorkflowExecution, request)

    def _execute(
        self,
        request: workflow_execution_pb2.CreateWorkflowExecutionRequest,
        timeout: Duration | None,
        deadline: float,
    ) -> Awaitable[WorkflowExecution]:
        execute = workflow_execution_pb2.ExecuteWorkflowRequest(request=request, timeout=timeout)
        return self._rpc.unary(self.stub.ExecuteWorkflow, execute, deadline=deadline)

    def _get(self, execution_id: str) -> Awaitable[WorkflowExecution]:
        request = workflow_execution_pb2.GetWorkflowExecutionRequest(id=execution_id)
        return self._rpc.unary(self.stub.GetWorkflowExecution, request)

    def _cancel(self, execution_id: str) -> Awaitable[WorkflowExecution]:
        request = workflow_execution_pb2.CancelWorkflowExecutionRequest(id=execution_id)
        return self._rpc.unary(self.stub.CancelWorkflowExecution, request)

    def _list(
        self, request: workflow_execution_pb2.ListWorkflowExecutionsRequest
    ) -> Awaitable[workflow_execution_pb2.ListWorkflowExecutionsResponse]:
        return self._rpc.unary(self.stub.ListWorkflowExecutions, request)

    def _watch(
        self, execution_id: str, after_sequence: int
    ) -> AsyncIterator[workflow_execution_pb2.WatchWorkflowExecutionResponse]:
        request = workflow_execution_pb2.WatchWorkflowExecutionRequest(
            id=execution_id, after_sequence=after_sequence
        )
        return self._rpc.stream(self.stub.WatchWorkflowExecution, request)
