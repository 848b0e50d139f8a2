"""The API calls behind the CLI commands, as plain async functions over gRPC stubs.

Nothing here parses arguments or formats output, so each function can be tested with a
fake server or fake stubs. Following, waiting for and cancelling executions of either kind
is in :mod:`polyfleet.cli.follow`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from polyfleet.channel import create_channel
from polyfleet.cli.errors import CliError
from polyfleet.v1 import (
    agent_execution_pb2,
    agent_execution_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    workflow_execution_pb2,
    workflow_execution_pb2_grpc,
    workflow_pb2,
    workflow_pb2_grpc,
)

if TYPE_CHECKING:
    from polyfleet.v1.agent_execution_pb2_grpc import AgentExecutionServiceAsyncStub
    from polyfleet.v1.agent_pb2_grpc import AgentServiceAsyncStub
    from polyfleet.v1.workflow_execution_pb2_grpc import WorkflowExecutionServiceAsyncStub
    from polyfleet.v1.workflow_pb2_grpc import WorkflowServiceAsyncStub

T = TypeVar("T")

# Unary calls are quick lookups or writes; a minute without an answer means trouble.
UNARY_TIMEOUT = 30.0
# ExecuteAgent and ExecuteWorkflow wait on the server; without a client-given wait the
# server uses its own default (60 s), never more than its limit (300 s). The call's own
# deadline adds a grace period so the server's DEADLINE_EXCEEDED, which names the
# execution, arrives first.
EXECUTE_MAX_WAIT = 300.0
EXECUTE_GRACE = 30.0


@dataclass(frozen=True)
class Clients:
    """Stubs for the public services, sharing one channel."""

    agents: AgentServiceAsyncStub
    executions: AgentExecutionServiceAsyncStub
    workflows: WorkflowServiceAsyncStub
    workflow_executions: WorkflowExecutionServiceAsyncStub


@asynccontextmanager
async def connect(address: str) -> AsyncIterator[Clients]:
    """Open a channel to the API and translate gRPC failures into :class:`CliError`.

    Args:
        address: ``host:port`` of the orchestrator API.

    Yields:
        Stubs bound to the channel, which is closed on exit.

    Raises:
        CliError: A call failed; the message is ``<STATUS_CODE>: <details>``.

    """
    try:
        async with create_channel(address) as channel:
            yield Clients(
                agents=agent_pb2_grpc.AgentServiceStub(channel),
                executions=agent_execution_pb2_grpc.AgentExecutionServiceStub(channel),
                workflows=workflow_pb2_grpc.WorkflowServiceStub(channel),
                workflow_executions=workflow_execution_pb2_grpc.WorkflowExecutionServiceStub(
                    channel
                ),
            )
    except grpc.aio.AioRpcError as exc:
        raise rpc_error(exc, address) from exc


def rpc_error(exc: grpc.aio.AioRpcError, address: str) -> CliError:
    """Describe a failed call as the CLI reports it.

    Args:
        exc: The error the call raised.
        address: The API address, named in the hint when the server is unreachable.

    Returns:
        An error whose message is ``<STATUS_CODE_NAME>: <details>``.

    """
    code = exc.code()
    hint = ""
    if code == grpc.StatusCode.UNAVAILABLE:
        hint = (
            f"is the polyfleet API running at {address}? Start a local fleet with "
            "'polyfleet dev', or point --address / POLYFLEET_API_ADDRESS at one."
        )
    return CliError(f"{code.name}: {exc.details() or 'no details'}", hint=hint)


async def apply_agents(
    stub: AgentServiceAsyncStub, agents: Sequence[agent_pb2.Agent]
) -> list[agent_pb2.Agent]:
    """Create or replace each agent by name, in order.

    Args:
        stub: AgentService stub.
        agents: Definitions, e.g. loaded from manifests.

    Returns:
        The stored agents, with their versions.

    """
    return [
        await stub.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=agent), timeout=UNARY_TIMEOUT)
        for agent in agents
    ]


async def every_page(fetch: Callable[[str], Awaitable[tuple[Iterable[T], str]]]) -> list[T]:
    """Collect every item of a paginated List, following page tokens.

    Args:
        fetch: Fetches the page of a token ("" for the first): its items and the next token.

    Returns:
        The items of every page, in server order.

    """
    items: list[T] = []
    token = ""
    while True:
        page, token = await fetch(token)
        items.extend(page)
        if not token:
            return items


async def list_agents(stub: AgentServiceAsyncStub) -> list[agent_pb2.Agent]:
    """Fetch every agent, following page tokens.

    Args:
        stub: AgentService stub.

    Returns:
        All agents in server order.

    """

    async def page(token: str) -> tuple[Iterable[agent_pb2.Agent], str]:
        request = agent_pb2.ListAgentsRequest(page_token=token)
        response = await stub.ListAgents(request, timeout=UNARY_TIMEOUT)
        return response.agents, response.next_page_token

    return await every_page(page)


@dataclass(frozen=True)
class RunOptions:
    """Optional fields of an agent Create request."""

    priority: int = 0
    request_id: str = ""
    strategy: int = 0


def agent_request(
    agent: str, message: str, session_id: str, options: RunOptions | None = None
) -> agent_execution_pb2.CreateAgentExecutionRequest:
    """The Create request for an agent execution."""
    options = options or RunOptions()
    return agent_execution_pb2.CreateAgentExecutionRequest(
        execution=agent_execution_pb2.AgentExecution(
            agent=agent, message=message, session_id=session_id, priority=options.priority
        ),
        request_id=options.request_id,
        multitask_strategy=options.strategy,  # type: ignore[arg-type]
    )


async def create_agent_execution(
    stub: AgentExecutionServiceAsyncStub,
    agent: str,
    message: str,
    session_id: str = "",
    options: RunOptions | None = None,
) -> agent_execution_pb2.AgentExecution:
    """Start an agent execution without waiting for it.

    Args:
        stub: AgentExecutionService stub.
        agent: Agent name.
        message: The user message.
        session_id: Session to continue; empty lets the server create one.
        options: Priority, request_id and multitask strategy.

    Returns:
        The new execution, normally PENDING.

    """
    request = agent_request(agent, message, session_id, options)
    return await stub.CreateAgentExecution(request, timeout=UNARY_TIMEOUT)


async def execute_agent(
    stub: AgentExecutionServiceAsyncStub,
    agent: str,
    message: str,
    session_id: str = "",
    wait_seconds: float | None = None,
    options: RunOptions | None = None,
) -> agent_execution_pb2.AgentExecution:
    """Run an agent and wait for the execution's terminal state (``ExecuteAgent``).

    Args:
        stub: AgentExecutionService stub.
        agent: Agent name.
        message: The user message.
        session_id: Session to continue; empty lets the server create one.
        wait_seconds: How long the server waits; None leaves it to the server's default.
        options: Priority, request_id and multitask strategy.

    Returns:
        The execution in its terminal phase, with its output.

    Raises:
        grpc.aio.AioRpcError: DEADLINE_EXCEEDED when the execution did not finish in time
            (it keeps running; the server's message names it), or any other failure.

    """
    request = agent_execution_pb2.ExecuteAgentRequest(
        request=agent_request(agent, message, session_id, options)
    )
    if wait_seconds is not None:
        request.timeout.FromNanoseconds(round(wait_seconds * 1e9))
    deadline = (EXECUTE_MAX_WAIT if wait_seconds is None else wait_seconds) + EXECUTE_GRACE
    return await stub.ExecuteAgent(request, timeout=deadline)


async def get_agent_execution(
    stub: AgentExecutionServiceAsyncStub, execution_id: str
) -> agent_execution_pb2.AgentExecution:
    """Fetch one agent execution.

    Args:
        stub: AgentExecutionService stub.
        execution_id: Its ID.

    Returns:
        The execution as stored.

    """
    return await stub.GetAgentExecution(
        agent_execution_pb2.GetAgentExecutionRequest(id=execution_id), timeout=UNARY_TIMEOUT
    )


# --- workflows ------------------------------------------------------------------------------


async def apply_workflows(
    stub: WorkflowServiceAsyncStub, workflows: Sequence[workflow_pb2.Workflow]
) -> list[workflow_pb2.Workflow]:
    """Create or replace each workflow by name, in order.

    Args:
        stub: WorkflowService stub.
        workflows: Definitions, e.g. loaded from manifests.

    Returns:
        The stored workflows, with their versions.

    """
    return [
        await stub.ApplyWorkflow(
            workflow_pb2.ApplyWorkflowRequest(workflow=workflow), timeout=UNARY_TIMEOUT
        )
        for workflow in workflows
    ]


async def list_workflows(stub: WorkflowServiceAsyncStub) -> list[workflow_pb2.Workflow]:
    """Fetch every workflow, following page tokens.

    Args:
        stub: WorkflowService stub.

    Returns:
        All workflows in server order.

    """

    async def page(token: str) -> tuple[Iterable[workflow_pb2.Workflow], str]:
        request = workflow_pb2.ListWorkflowsRequest(page_token=token)
        response = await stub.ListWorkflows(request, timeout=UNARY_TIMEOUT)
        return response.workflows, response.next_page_token

    return await every_page(page)


def _workflow_execution(
    workflow: str, workflow_input: Mapping[str, Any] | None
) -> workflow_execution_pb2.WorkflowExecution:
    execution = workflow_execution_pb2.WorkflowExecution(workflow=workflow)
    if workflow_input is not None:
        execution.input.SetInParent()
        execution.input.update(workflow_input)
    return execution


async def create_workflow_execution(
    stub: WorkflowExecutionServiceAsyncStub,
    workflow: str,
    workflow_input: Mapping[str, Any] | None = None,
) -> workflow_execution_pb2.WorkflowExecution:
    """Start a workflow execution without waiting for it.

    Args:
        stub: WorkflowExecutionService stub.
        workflow: Workflow name.
        workflow_input: The workflow's input (a JSON object); None sends none.

    Returns:
        The new execution, normally PENDING.

    """
    request = workflow_execution_pb2.CreateWorkflowExecutionRequest(
        execution=_workflow_execution(workflow, workflow_input)
    )
    return await stub.CreateWorkflowExecution(request, timeout=UNARY_TIMEOUT)


async def execute_workflow(
    stub: WorkflowExecutionServiceAsyncStub,
    workflow: str,
    workflow_input: Mapping[str, Any] | None = None,
    wait_seconds: float | None = None,
) -> workflow_execution_pb2.WorkflowExecution:
    """Run a workflow and wait for the execution's terminal state (``ExecuteWorkflow``).

    Args:
        stub: WorkflowExecutionService stub.
        workflow: Workflow name.
        workflow_input: The workflow's input (a JSON object); None sends none.
        wait_seconds: How long the server waits; None leaves it to the server's default.
        options: Priority, request_id and multitask strategy.

    Returns:
        The execution in its terminal phase, with its output.

    Raises:
        grpc.aio.AioRpcError: DEADLINE_EXCEEDED when the execution did not finish in time
            (it keeps running; the server's message names it), or any other failure.

    """
    request = workflow_execution_pb2.ExecuteWorkflowRequest(
        request=workflow_execution_pb2.CreateWorkflowExecutionRequest(
            execution=_workflow_execution(workflow, workflow_input)
        )
    )
    if wait_seconds is not None:
        request.timeout.FromNanoseconds(round(wait_seconds * 1e9))
    deadline = (EXECUTE_MAX_WAIT if wait_seconds is None else wait_seconds) + EXECUTE_GRACE
    return await stub.ExecuteWorkflow(request, timeout=deadline)
