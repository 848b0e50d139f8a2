"""Agents and sessions: validated CRUD over the store."""

from __future__ import annotations

import store
from orchestrator.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    invalid_page_token,
)
from orchestrator.validation import validate_agent
from polyfleet.v1 import agent_pb2, session_pb2


class Agents:
    """Agent definitions, addressed by ID or by their unique name."""

    def __init__(self, db: store.Store) -> None:
        self._db = db

    async def create(self, agent: agent_pb2.Agent) -> agent_pb2.Agent:
        """Store a new agent.

        Raises:
            InvalidArgumentError: The definition is invalid.
            FailedPreconditionError: The name is taken (use apply to replace it).

        """
        validate_agent(agent)
        try:
            return await self._db.agents.create(agent)
        except store.AlreadyExistsError:
            raise FailedPreconditionError(
                f"agent '{agent.name}' already exists; use ApplyAgent to replace it"
            ) from None

    async def apply(self, agent: agent_pb2.Agent) -> agent_pb2.Agent:
        """Create the agent, or replace the definition of the agent with its name."""
        validate_agent(agent)
        stored, _created = await self._db.agents.apply(agent)
        return stored

    async def get(self, name: str) -> agent_pb2.Agent:
        """Read an agent by ID or name."""
        if not name:
            raise InvalidArgumentError("name", "must not be empty")
        try:
            return await self._db.agents.get(name)
        except store.NotFoundError:
            raise NotFoundError("agent", name) from None

    async def list(self, page_size: int, page_token: str) -> tuple[list[agent_pb2.Agent], str]:
        """List agents, newest first."""
        try:
            return await self._db.agents.list(page_size=page_size, page_token=page_token)
        except store.InvalidPageTokenError:
            raise invalid_page_token() from None

    async def update(self, agent: agent_pb2.Agent) -> agent_pb2.Agent:
        """Replace an agent's definition; a set ``version`` must match the stored one."""
        validate_agent(agent)
        try:
            return await self._db.agents.update(agent, expected_version=agent.version or None)
        except store.NotFoundError:
            raise NotFoundError("agent", agent.id or agent.name) from None

    async def delete(self, name: str) -> None:
        """Delete an agent by ID or name."""
        try:
            await self._db.agents.delete(name)
        except store.NotFoundError:
            raise NotFoundError("agent", name) from None


class Sessions:
    """Sessions of conversations with one agent."""

    def __init__(self, db: store.Store) -> None:
        self._db = db

    async def create(self, session: session_pb2.Session) -> session_pb2.Session:
        """Create a session for an existing agent."""
        if not session.agent:
            raise InvalidArgumentError("session.agent", "must not be empty")
        try:
            agent = await self._db.agents.get(session.agent)
        except store.NotFoundError:
            raise NotFoundError("agent", session.agent) from None
        fresh = session_pb2.Session(agent=agent.name, labels=dict(session.labels))
        return await self._db.sessions.create(fresh)

    async def get(self, session_id: str) -> session_pb2.Session:
        """Read a session."""
        if not session_id:
            raise InvalidArgumentError("id", "must not be empty")
        try:
            return await self._db.sessions.get(session_id)
        except store.NotFoundError:
            raise NotFoundError("session", session_id) from None

    async def list(
        self, agent: str, page_size: int, page_token: str
    ) -> tuple[list[session_pb2.Session], str]:
        """List sessions newest first, optionally of one agent."""
        try:
            return await self._db.sessions.list(
                agent=agent, page_size=page_size, page_token=page_token
            )
        except store.InvalidPageTokenError:
            raise invalid_page_token() from None
