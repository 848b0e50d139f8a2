"""Thin servicers for AgentService and SessionService."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2

from orchestrator.resources import NamedResources, Sessions
from orchestrator.servicers.errors import unary
from polyfleet.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
    workflow_pb2,
    workflow_pb2_grpc,
)

Context = grpc.aio.ServicerContext[Any, Any]


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    """polyfleet.v1.AgentService."""

    def __init__(self, agents: NamedResources[agent_pb2.Agent]) -> None:
        self._agents = agents

    @unary
    async def CreateAgent(
        self, request: agent_pb2.CreateAgentRequest, context: Context
    ) -> agent_pb2.Agent:
        return await self._agents.create(request.agent)

    @unary
    async def ApplyAgent(
        self, request: agent_pb2.ApplyAgentRequest, context: Context
    ) -> agent_pb2.Agent:
        return await self._agents.apply(request.agent)

    @unary
    async def GetAgent(
        self, request: agent_pb2.GetAgentRequest, context: Context
    ) -> agent_pb2.Agent:
        return await self._agents.get(request.name)

    @unary
    async def ListAgents(
        self, request: agent_pb2.ListAgentsRequest, context: Context
    ) -> agent_pb2.ListAgentsResponse:
        items, token = await self._agents.list(request.page_size, request.page_token)
        return agent_pb2.ListAgentsResponse(agents=items, next_page_token=token)

    @unary
    async def UpdateAgent(
        self, request: agent_pb2.UpdateAgentRequest, context: Context
    ) -> agent_pb2.Agent:
        return await self._agents.update(request.agent)

    @unary
    async def DeleteAgent(
        self, request: agent_pb2.DeleteAgentRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._agents.delete(request.name)
        return empty_pb2.Empty()


class SessionServicer(session_pb2_grpc.SessionServiceServicer):
    """polyfleet.v1.SessionService."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    @unary
    async def CreateSession(
        self, request: session_pb2.CreateSessionRequest, context: Context
    ) -> session_pb2.Session:
        return await self._sessions.create(request.session)

    @unary
    async def GetSession(
        self, request: session_pb2.GetSessionRequest, context: Context
    ) -> session_pb2.Session:
        return await self._sessions.get(request.id)

    @unary
    async def ListSessions(
        self, request: session_pb2.ListSessionsRequest, context: Context
    ) -> session_pb2.ListSessionsResponse:
        items, token = await self._sessions.list(
            request.agent, request.page_size, request.page_token
        )
        return session_pb2.ListSessionsResponse(sessions=items, next_page_token=token)


class WorkflowServicer(workflow_pb2_grpc.WorkflowServiceServicer):
    """polyfleet.v1.WorkflowService."""

    def __init__(self, workflows: NamedResources[workflow_pb2.Workflow]) -> None:
        self._workflows = workflows

    @unary
    async def CreateWorkflow(
        self, request: workflow_pb2.CreateWorkflowRequest, context: Context
    ) -> workflow_pb2.Workflow:
        return await self._workflows.create(request.workflow)

    @unary
    async def ApplyWorkflow(
        self, request: workflow_pb2.ApplyWorkflowRequest, context: Context
    ) -> workflow_pb2.Workflow:
        return await self._workflows.apply(request.workflow)

    @unary
    async def GetWorkflow(
        self, request: workflow_pb2.GetWorkflowRequest, context: Context
    ) -> workflow_pb2.Workflow:
        return await self._workflows.get(request.name)

    @unary
    async def ListWorkflows(
        self, request: workflow_pb2.ListWorkflowsRequest, context: Context
    ) -> workflow_pb2.ListWorkflowsResponse:
        items, token = await self._workflows.list(request.page_size, request.page_token)
        return workflow_pb2.ListWorkflowsResponse(workflows=items, next_page_token=token)

    @unary
    async def UpdateWorkflow(
        self, request: workflow_pb2.UpdateWorkflowRequest, context: Context
    ) -> workflow_pb2.Workflow:
        return await self._workflows.update(request.workflow)

    @unary
    async def DeleteWorkflow(
        self, request: workflow_pb2.DeleteWorkflowRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._workflows.delete(request.name)
        return empty_pb2.Empty()
