"""Typed calls of the definition services: agents, sessions, workflows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

from polyfleet.client.paging import every_page
from polyfleet.client.transport import Transport
from polyfleet.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
    workflow_pb2,
    workflow_pb2_grpc,
)

if TYPE_CHECKING:
    import grpc

    from polyfleet.v1.agent_pb2_grpc import AgentServiceAsyncStub
    from polyfleet.v1.session_pb2_grpc import SessionServiceAsyncStub
    from polyfleet.v1.workflow_pb2_grpc import WorkflowServiceAsyncStub


class Agents:
    """AgentService: agent definitions."""

    def __init__(self, channel: grpc.aio.Channel, transport: Transport) -> None:
        """Bind to a channel.

        Args:
            channel: The client's channel.
            transport: How calls are made.

        """
        self.stub: AgentServiceAsyncStub = agent_pb2_grpc.AgentServiceStub(channel)
        self._rpc = transport

    async def apply(self, agent: agent_pb2.Agent) -> agent_pb2.Agent:
        """Create or replace an agent by name; return it as stored, with its version."""
        return await self._rpc.unary(self.stub.ApplyAgent, agent_pb2.ApplyAgentRequest(agent=agent))

    async def create(self, agent: agent_pb2.Agent) -> agent_pb2.Agent:
        """Create an agent (ALREADY_EXISTS when the name is taken)."""
        request = agent_pb2.CreateAgentRequest(agent=agent)
        return await self._rpc.unary(self.stub.CreateAgent, request)

    async def get(self, name: str) -> agent_pb2.Agent:
        """Fetch an agent by name."""
        return await self._rpc.unary(self.stub.GetAgent, agent_pb2.GetAgentRequest(name=name))

    async def list(self, page_size: int = 0, page_token: str = "") -> agent_pb2.ListAgentsResponse:
        """Fetch one page of agents."""
        request = agent_pb2.ListAgentsRequest(page_size=page_size, page_token=page_token)
        return await self._rpc.unary(self.stub.ListAgents, request)

    def list_all(self, page_size: int = 0) -> AsyncIterator[agent_pb2.Agent]:
        """Every agent, in server order, following page tokens."""

        async def page(token: str) -> tuple[Iterable[agent_pb2.Agent], str]:
            response = await self.list(page_size, token)
            return response.agents, response.next_page_token

        return every_page(page)


class Sessions:
    """SessionService: the conversations agent executions continue."""

    def __init__(self, channel: grpc.aio.Channel, transport: Transport) -> None:
        """Bind to a channel.

        Args:
            channel: The client's channel.
            transport: How calls are made.

        """
        self.stub: SessionServiceAsyncStub = session_pb2_grpc.SessionServiceStub(channel)
        self._rpc = transport

    async def create(self, session: session_pb2.Session) -> session_pb2.Session:
        """Create a session (``agent`` and ``labels`` are used)."""
        request = session_pb2.CreateSessionRequest(session=session)
        return await self._rpc.unary(self.stub.CreateSession, request)

    async def get(self, session_id: str) -> session_pb2.Session:
        """Fetch a session by ID."""
        request = session_pb2.GetSessionRequest(id=session_id)
        return await self._rpc.unary(self.stub.GetSession, request)

    async def list(
        self, agent: str = "", page_size: int = 0, page_token: str = ""
    ) -> session_pb2.ListSessionsResponse:
        """Fetch one page of sessions, of one agent when ``agent`` is given."""
        request = session_pb2.ListSessionsRequest(
            agent=agent, page_size=page_size, page_token=page_token
        )
        return await self._rpc.unary(self.stub.ListSessions, request)

    def list_all(self, agent: str = "", page_size: int = 0) -> AsyncIterator[session_pb2.Session]:
        """Every session (of one agent when ``agent`` is given), following page tokens."""

        async def page(token: str) -> tuple[Iterable[session_pb2.Session], str]:
            response = await self.list(agent, page_size, token)
            return response.sessions, response.next_page_token

        return every_page(page)


class Workflows:
    """WorkflowService: workflow definitions."""

    def __init__(self, channel: grpc.aio.Channel, transport: Transport) -> None:
        """Bind to a channel.

        Args:
            channel: The client's channel.
            transport: How calls are made.

        """
        self.stub: WorkflowServiceAsyncStub = workflow_pb2_grpc.WorkflowServiceStub(channel)
        self._rpc = transport

    async def apply(self, workflow: workflow_pb2.Workflow) -> workflow_pb2.Workflow:
        """Create or replace a workflow by name; return it as stored, with its version."""
        request = workflow_pb2.ApplyWorkflowRequest(workflow=workflow)
        return await self._rpc.unary(self.stub.ApplyWorkflow, request)

    async def create(self, workflow: workflow_pb2.Workflow) -> workflow_pb2.Workflow:
        """Create a workflow (ALREADY_EXISTS when the name is taken)."""
        request = workflow_pb2.CreateWorkflowRequest(workflow=workflow)
        return await self._rpc.unary(self.stub.CreateWorkflow, request)

    async def get(self, name: str) -> workflow_pb2.Workflow:
        """Fetch a workflow by name."""
        request = workflow_pb2.GetWorkflowRequest(name=name)
        return await self._rpc.unary(self.stub.GetWorkflow, request)

    async def list(
        self, page_size: int = 0, page_token: str = ""
    ) -> workflow_pb2.ListWorkflowsResponse:
        """Fetch one page of workflows."""
        request = workflow_pb2.ListWorkflowsRequest(page_size=page_size, page_token=page_token)
        return await self._rpc.unary(self.stub.ListWorkflows, request)

    def list_all(self, page_size: int = 0) -> AsyncIterator[workflow_pb2.Workflow]:
        """Every workflow, in server order, following page tokens."""

        async def page(token: str) -> tuple[Iterable[workflow_pb2.Workflow], str]:
            response = await self.list(page_size, token)
            return response.workflows, response.next_page_token

        return every_page(page)
