"""Agents, workflows and sessions: validated CRUD over the store.

A missing resource raises the store's ``NotFoundError`` (kind and key), which the API
edge answers NOT_FOUND like the orchestrator's own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import store
from orchestrator.actors import current_actor, describe
from orchestrator.errors import FailedPreconditionError, InvalidArgumentError, invalid_page_token
from orchestrator.function_sources import FunctionSources
from orchestrator.paging import every_page
from orchestrator.schedules import Schedules
from orchestrator.validation import validate_agent, validate_workflow
from polyfleet.config import OFFICIAL_FUNCTION_CATALOG
from polyfleet.quoting import quote
from polyfleet.v1 import agent_pb2, session_pb2, workflow_pb2

N = TypeVar("N", agent_pb2.Agent, workflow_pb2.Workflow)
logger = logging.getLogger(__name__)


def _written_by(resource: N) -> N:
    # A copy naming the API caller as its creator and updater: whatever the client sent in
    # these output-only fields is replaced, and a replace keeps the stored created_by.
    stamped = type(resource)()
    stamped.CopyFrom(resource)
    actor = current_actor()
    stamped.created_by.CopyFrom(actor)
    stamped.updated_by.CopyFrom(actor)
    return stamped


class NamedResources(Generic[N]):
    """Resources addressed by ID or by their unique name, validated before every write."""

    def __init__(
        self,
        kind: str,
        repository: store.NamedResourceRepository[N],
        validate: Callable[[N], Awaitable[N | None]],
        *,
        written: Callable[[N], Awaitable[None]] | None = None,
        deleted: Callable[[N], Awaitable[None]] | None = None,
    ) -> None:
        self._kind = kind
        self._repo: store.NamedResourceRepository[N] = repository
        # Returns the resource to store when the server fills fields of its own in.
        self._validate: Callable[[N], Awaitable[N | None]] = validate
        # Called after a write or delete is stored (a workflow's schedule follows it).
        self._written: Callable[[N], Awaitable[None]] | None = written
        self._deleted: Callable[[N], Awaitable[None]] | None = deleted

    async def create(self, resource: N) -> N:
        """Store a new resource.

        Raises:
            InvalidArgumentError: The definition is invalid.
            FailedPreconditionError: The name is taken (use apply to replace it).
        """
        resource = await self._validate(resource) or resource
        try:
            stored = await self._repo.create(_written_by(resource))
        except store.AlreadyExistsError:
            raise FailedPreconditionError(
                f"{self._kind} {quote(resource.name)} already exists; use Apply to replace it",
                reason_code="ALREADY_EXISTS",
            ) from None
        self._log(stored, "created")
        await self._after_write(stored)
        return stored

    async def apply(self, resource: N) -> N:
        """Create the resource, or replace the definition of the one with its name."""
        resource = await self._validate(resource) or resource
        stored, created = await self._repo.apply(_written_by(resource))
        self._log(stored, "created (apply)" if created else "replaced (apply)")
        await self._after_write(stored)
        return stored

    async def get(self, name: str) -> N:
        """Read a resource by ID or name."""
        if not name:
            raise InvalidArgumentError("name", "must not be empty")
        return await self._repo.get(name)

    async def list(self, page_size: int, page_token: str) -> tuple[list[N], str]:
        """List resources, newest first."""
        try:
            return await self._repo.list(page_size=page_size, page_token=page_token)
        except store.InvalidPageTokenError:
            raise invalid_page_token() from None

    async def update(self, resource: N) -> N:
        """Replace a definition; a set ``version`` must match the stored one."""
        resource = await self._validate(resource) or resource
        stored = await self._repo.update(
            _written_by(resource), expected_version=resource.version or None
        )
        self._log(stored, "updated")
        await self._after_write(stored)
        return stored

    async def delete(self, name: str) -> None:
        """Delete a resource by ID or name (who deleted it is logged; nothing is kept)."""
        existing = await self._repo.get(name) if self._deleted else None
        await self._repo.delete(name)
        logger.info("%s %s deleted by %s", self._kind, quote(name), describe(current_actor()))
        if self._deleted and existing is not None:
            await self._deleted(existing)

    async def _after_write(self, stored: N) -> None:
        if self._written:
            await self._written(stored)

    def _log(self, stored: N, change: str) -> None:
        logger.info(
            "%s %s (%s) %s by %s, version %d",
            self._kind,
            quote(stored.name),
            stored.id,
            change,
            describe(stored.updated_by),
            stored.version,
        )


def agents(db: store.Store) -> NamedResources[agent_pb2.Agent]:
    """Agent definitions."""

    async def validate(agent: agent_pb2.Agent) -> None:
        validate_agent(agent)
        return None

    return NamedResources("agent", db.agents, validate)


def workflows(
    db: store.Store,
    schedules: Schedules | None = None,
    functions: FunctionSources | None = None,
) -> NamedResources[workflow_pb2.Workflow]:
    """Serverless Workflow documents; `call: agent` and `run: workflow` name existing ones.

    With ``schedules``, every write makes the workflow's Temporal Schedule follow its
    document's `schedule`, and a delete deletes it (orchestrator/schedules.py). Every write
    fetches the catalog and URL functions the document calls through ``functions`` (by
    default, from the official catalog only) and stores them in ``resolved_functions``.
    """
    sources = functions or FunctionSources([OFFICIAL_FUNCTION_CATALOG])

    async def validate(definition: workflow_pb2.Workflow) -> workflow_pb2.Workflow:
        agents, names = await _agent_names(db), await _workflow_names(db)
        document = validate_workflow(definition, agents, known_workflows=names)
        resolved = await sources.resolve(document, "workflow.document")
        if resolved:
            parsed = {reference: json.loads(text) for reference, text in resolved.items()}
            validate_workflow(definition, agents, known_workflows=names, resolved_functions=parsed)
        # Output only: whatever the client sent is replaced by what was fetched now.
        prepared = workflow_pb2.Workflow()
        prepared.CopyFrom(definition)
        prepared.resolved_functions.clear()
        prepared.resolved_functions.update(resolved)
        return prepared

    async def deleted(definition: workflow_pb2.Workflow) -> None:
        if schedules is not None:
            await schedules.remove(definition.name)

    return NamedResources(
        "workflow",
        db.workflows,
        validate,
        written=schedules.sync if schedules is not None else None,
        deleted=deleted if schedules is not None else None,
    )


async def _workflow_names(db: store.Store) -> list[str]:
    # `run: workflow` names another applied workflow.
    found = await every_page(lambda token: db.workflows.list(page_size=1000, page_token=token))
    return [definition.name for definition in found]


async def _agent_names(db: store.Store) -> list[str]:
    agents = await every_page(lambda token: db.agents.list(page_size=1000, page_token=token))
    return [agent.name for agent in agents]


class Sessions:
    """Sessions of conversations with one agent."""

    def __init__(self, db: store.Store) -> None:
        self._db = db

    async def create(self, session: session_pb2.Session) -> session_pb2.Session:
        """Create a session for an existing agent."""
        if not session.agent:
            raise InvalidArgumentError("session.agent", "must not be empty")
        agent = await self._db.agents.get(session.agent)
        fresh = session_pb2.Session(agent=agent.name, labels=dict(session.labels))
        return await self._db.sessions.create(fresh)

    async def get(self, session_id: str) -> session_pb2.Session:
        """Read a session."""
        if not session_id:
            raise InvalidArgumentError("id", "must not be empty")
        return await self._db.sessions.get(session_id)

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
