"""Helpers of the lifecycle tests."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from temporalio import activity

from polyfleet import contract
from polyfleet.v1 import activities_pb2, agent_execution_pb2, agent_pb2
from runner.runner_client import activity_claim
from tests.conftest import Fleet, scripted_agent
from tests.helpers import assert_eventually, wait_terminal


def slow_agent(name: str = "slow", seconds: float = 2.0) -> agent_pb2.Agent:
    """A scripted agent that takes about ``seconds`` to answer, streaming one word a second."""
    words = max(1, round(seconds))
    agent = scripted_agent(name=name)
    agent.model.scripted.default_reply = " ".join(["done"] * words)
    agent.model.scripted.chunk_words = 1
    agent.model.scripted.chunk_delay_ms = int(seconds * 1000 / words)
    return agent


async def apply(fleet: Fleet, agent: agent_pb2.Agent) -> None:
    """Apply an agent."""
    await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=agent))


def request(
    agent: str,
    message: str = "go",
    *,
    session_id: str = "",
    request_id: str = "",
    strategy: int = 0,
    priority: int = 0,
) -> agent_execution_pb2.CreateAgentExecutionRequest:
    """A Create request."""
    return agent_execution_pb2.CreateAgentExecutionRequest(
        execution=agent_execution_pb2.AgentExecution(
            agent=agent, message=message, session_id=session_id, priority=priority
        ),
        request_id=request_id,
        multitask_strategy=strategy,  # type: ignore[arg-type]
    )


async def create(
    fleet: Fleet, create_request: agent_execution_pb2.CreateAgentExecutionRequest
) -> agent_execution_pb2.AgentExecution:
    """Create an execution."""
    return await fleet.executions.CreateAgentExecution(create_request)


async def get(fleet: Fleet, execution_id: str) -> agent_execution_pb2.AgentExecution:
    """Read an execution."""
    return await fleet.executions.GetAgentExecution(
        agent_execution_pb2.GetAgentExecutionRequest(id=execution_id)
    )


async def wait_phase(
    fleet: Fleet,
    execution_id: str,
    phases: Collection[int] = contract.TERMINAL_PHASES,
    timeout: float = 60,
) -> agent_execution_pb2.AgentExecution:
    """Wait until the execution is in one of ``phases``."""
    if phases == contract.TERMINAL_PHASES:
        return await wait_terminal(fleet.client.agent_executions, execution_id, timeout)
    return await assert_eventually(
        lambda: get(fleet, execution_id),
        lambda e: e.status.phase in phases,
        timeout=timeout,
        message=f"execution {execution_id} did not reach {phases}",
    )


class HeldRunner:
    """A runner whose ExecuteGraphton records its RunnerService claim, then waits.

    ``claims`` maps each held execution to the metadata its activity would send
    (``runner.runner_client.activity_claim``), valid while it is held; ``release`` lets
    every held activity finish.
    """

    def __init__(self) -> None:
        self.running = asyncio.Event()
        self.release = asyncio.Event()
        self.claims: dict[str, tuple[tuple[str, str], ...]] = {}

    @activity.defn(name=contract.ENSURE_THREAD)
    async def ensure_thread(
        self, params: activities_pb2.EnsureThreadInput
    ) -> activities_pb2.EnsureThreadOutput:
        return activities_pb2.EnsureThreadOutput(thread_id="thread-1", created=True)

    @activity.defn(name=contract.EXECUTE_GRAPHTON)
    async def execute_graphton(
        self, params: activities_pb2.ExecuteGraphtonInput
    ) -> activities_pb2.ExecuteGraphtonOutput:
        self.claims[params.execution_id] = activity_claim()
        self.running.set()
        await self.release.wait()
        return activities_pb2.ExecuteGraphtonOutput(final_message_id="m1")
