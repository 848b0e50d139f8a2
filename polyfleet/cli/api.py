"""The API calls behind the CLI commands, as plain async functions over gRPC stubs.

Nothing here parses arguments or formats output, so each function can be tested with a
fake server or fake stubs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from polyfleet.channel import create_channel
from polyfleet.cli.errors import CliError
from polyfleet.cli.output import is_terminal, phase_name
from polyfleet.cli.progress import ProgressPrinter
from polyfleet.v1 import agent_execution_pb2, agent_execution_pb2_grpc, agent_pb2, agent_pb2_grpc

if TYPE_CHECKING:
    from polyfleet.v1.agent_execution_pb2_grpc import AgentExecutionServiceAsyncStub
    from polyfleet.v1.agent_pb2_grpc import AgentServiceAsyncStub

logger = logging.getLogger(__name__)

# Unary calls are quick lookups or writes; a minute without an answer means trouble.
UNARY_TIMEOUT = 30.0
# A watch that drops (orchestrator restart, network blip) resumes from the last event
# seen, so nothing is lost; these bound how long it keeps trying.
WATCH_RECONNECTS = 6
WATCH_BACKOFF_SECONDS = 0.5
_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL})
# ExecuteAgent waits on the server; without a client-given wait the server uses its own
# default (60 s), never more than its limit (300 s). The call's own deadline adds a grace
# period so the server's DEADLINE_EXCEEDED, which names the execution, arrives first.
EXECUTE_MAX_WAIT = 300.0
EXECUTE_GRACE = 30.0
# How often a wait for a terminal phase looks at the execution.
POLL_INTERVAL = 0.25


@dataclass(frozen=True)
class Clients:
    """Stubs for the public services, sharing one channel."""

    agents: AgentServiceAsyncStub
    executions: AgentExecutionServiceAsyncStub


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


async def list_agents(stub: AgentServiceAsyncStub) -> list[agent_pb2.Agent]:
    """Fetch every agent, following page tokens.

    Args:
        stub: AgentService stub.

    Returns:
        All agents in server order.

    """
    agents: list[agent_pb2.Agent] = []
    token = ""
    while True:
        response = await stub.ListAgents(
            agent_pb2.ListAgentsRequest(page_token=token), timeout=UNARY_TIMEOUT
        )
        agents.extend(response.agents)
        token = response.next_page_token
        if not token:
            return agents


async def create_agent_execution(
    stub: AgentExecutionServiceAsyncStub, agent: str, message: str, session_id: str = ""
) -> agent_execution_pb2.AgentExecution:
    """Start an agent execution without waiting for it.

    Args:
        stub: AgentExecutionService stub.
        agent: Agent name.
        message: The user message.
        session_id: Session to continue; empty lets the server create one.

    Returns:
        The new execution, normally PENDING.

    """
    request = agent_execution_pb2.CreateAgentExecutionRequest(
        execution=agent_execution_pb2.AgentExecution(
            agent=agent, message=message, session_id=session_id
        )
    )
    return await stub.CreateAgentExecution(request, timeout=UNARY_TIMEOUT)


async def execute_agent(
    stub: AgentExecutionServiceAsyncStub,
    agent: str,
    message: str,
    session_id: str = "",
    wait_seconds: float | None = None,
) -> agent_execution_pb2.AgentExecution:
    """Run an agent and wait for the execution's terminal state (``ExecuteAgent``).

    Args:
        stub: AgentExecutionService stub.
        agent: Agent name.
        message: The user message.
        session_id: Session to continue; empty lets the server create one.
        wait_seconds: How long the server waits; None leaves it to the server's default.

    Returns:
        The execution in its terminal phase, with its output.

    Raises:
        grpc.aio.AioRpcError: DEADLINE_EXCEEDED when the execution did not finish in time
            (it keeps running; the server's message names it), or any other failure.

    """
    request = agent_execution_pb2.ExecuteAgentRequest(
        request=agent_execution_pb2.CreateAgentExecutionRequest(
            execution=agent_execution_pb2.AgentExecution(
                agent=agent, message=message, session_id=session_id
            )
        )
    )
    if wait_seconds is not None:
        request.timeout.FromNanoseconds(round(wait_seconds * 1e9))
    deadline = (EXECUTE_MAX_WAIT if wait_seconds is None else wait_seconds) + EXECUTE_GRACE
    return await stub.ExecuteAgent(request, timeout=deadline)


async def cancel_agent_execution(
    stub: AgentExecutionServiceAsyncStub, execution_id: str
) -> agent_execution_pb2.AgentExecution:
    """Ask for an execution to be cancelled.

    Args:
        stub: AgentExecutionService stub.
        execution_id: Its ID.

    Returns:
        The execution right after the request: CANCELLED, still running while the runner
        stops, or unchanged when it had already ended.

    """
    return await stub.CancelAgentExecution(
        agent_execution_pb2.CancelAgentExecutionRequest(id=execution_id), timeout=UNARY_TIMEOUT
    )


async def wait_until_terminal(
    stub: AgentExecutionServiceAsyncStub, execution_id: str, limit_seconds: float
) -> agent_execution_pb2.AgentExecution:
    """Poll an execution until it reaches a terminal phase.

    Args:
        stub: AgentExecutionService stub.
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
        execution = await get_agent_execution(stub, execution_id)
        if is_terminal(execution.status.phase):
            return execution
        if loop.time() >= deadline:
            phase = phase_name(execution.status.phase)
            raise CliError(
                f"execution {execution_id} is still {phase} after {limit_seconds:g} s",
                hint=f"follow it with: polyfleet executions watch {execution_id}",
            )
        await asyncio.sleep(POLL_INTERVAL)


async def get_agent_execution(
    stub: AgentExecutionServiceAsyncStub, execution_id: str
) -> agent_execution_pb2.AgentExecution:
    """Fetch one execution.

    Args:
        stub: AgentExecutionService stub.
        execution_id: Its ID.

    Returns:
        The execution as stored.

    """
    return await stub.GetAgentExecution(
        agent_execution_pb2.GetAgentExecutionRequest(id=execution_id), timeout=UNARY_TIMEOUT
    )


async def watch_agent_execution(
    stub: AgentExecutionServiceAsyncStub,
    execution_id: str,
    printer: ProgressPrinter,
    *,
    after_sequence: int = 0,
) -> agent_execution_pb2.AgentExecution:
    """Render an execution's progress live until it reaches a terminal phase.

    The watch resumes after the last event seen when the stream breaks, so a restart of
    the orchestrator neither loses nor repeats output.

    Args:
        stub: AgentExecutionService stub.
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
            request = agent_execution_pb2.WatchAgentExecutionRequest(
                id=execution_id, after_sequence=sequence
            )
            async for response in stub.WatchAgentExecution(request):
                # The snapshot is skipped: the events after `sequence` are what is wanted,
                # and rendering the snapshot's status too would show its content twice.
                if response.HasField("event"):
                    printer.event(response.event)
                    sequence = max(sequence, response.event.sequence)
                    failures = 0
            execution = await get_agent_execution(stub, execution_id)
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
