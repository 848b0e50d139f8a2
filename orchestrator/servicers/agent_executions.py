"""Thin servicer for AgentExecutionService."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from orchestrator.agent_executions import AgentExecutions
from orchestrator.servicers.errors import streaming, unary
from polyfleet.v1 import agent_execution_pb2, agent_execution_pb2_grpc, common_pb2

Context = grpc.aio.ServicerContext[Any, Any]
AgentExecution = agent_execution_pb2.AgentExecution


async def watch_responses(
    items: AsyncIterator[AgentExecution | common_pb2.ExecutionEvent],
) -> AsyncIterator[agent_execution_pb2.WatchAgentExecutionResponse]:
    """An agent execution's watch (snapshot, then events) as Watch responses.

    Shared by the public Watch and RunnerService's WatchChildAgentExecution.
    """
    async for item in items:
        if isinstance(item, AgentExecution):
            yield agent_execution_pb2.WatchAgentExecutionResponse(snapshot=item)
        else:
            yield agent_execution_pb2.WatchAgentExecutionResponse(event=item)


class AgentExecutionServicer(agent_execution_pb2_grpc.AgentExecutionServiceServicer):
    """polyfleet.v1.AgentExecutionService."""

    def __init__(self, executions: AgentExecutions) -> None:
        self._executions = executions

    @unary
    async def CreateAgentExecution(
        self, request: agent_execution_pb2.CreateAgentExecutionRequest, context: Context
    ) -> AgentExecution:
        return await self._executions.create(request)

    @unary
    async def ExecuteAgent(
        self, request: agent_execution_pb2.ExecuteAgentRequest, context: Context
    ) -> AgentExecution:
        timeout = request.timeout if request.HasField("timeout") else None
        return await self._executions.execute(request.request, timeout)

    @unary
    async def GetAgentExecution(
        self, request: agent_execution_pb2.GetAgentExecutionRequest, context: Context
    ) -> AgentExecution:
        return await self._executions.get(request.id, request.view)

    @unary
    async def ListAgentExecutions(
        self, request: agent_execution_pb2.ListAgentExecutionsRequest, context: Context
    ) -> agent_execution_pb2.ListAgentExecutionsResponse:
        return await self._executions.list(request)

    @unary
    async def CancelAgentExecution(
        self, request: agent_execution_pb2.CancelAgentExecutionRequest, context: Context
    ) -> AgentExecution:
        return await self._executions.cancel(request.id)

    @streaming
    async def WatchAgentExecution(
        self, request: agent_execution_pb2.WatchAgentExecutionRequest, context: Context
    ) -> AsyncIterator[agent_execution_pb2.WatchAgentExecutionResponse]:
        async for response in watch_responses(
            self._executions.watch(request.id, request.after_sequence)
        ):
            yield response
