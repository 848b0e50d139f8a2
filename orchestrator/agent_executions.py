"""Agent executions: what differs from workflow executions (agent, session, user message)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import store
from orchestrator.errors import FailedPreconditionError, InvalidArgumentError, WorkflowStartError
from orchestrator.executions import DEFAULT_PRIORITY, Executions, request_fingerprint
from orchestrator.status import merge_agent_update
from orchestrator.validation import validate_create_agent_execution
from polyfleet import contract
from polyfleet.quoting import quote
from polyfleet.v1 import activities_pb2, agent_execution_pb2, common_pb2, session_pb2

AgentExecution = agent_execution_pb2.AgentExecution
CreateRequest = agent_execution_pb2.CreateAgentExecutionRequest
logger = logging.getLogger(__name__)


def _session_for_request(request_id: str) -> str:
    # Without a session, a retried request must land in the session its original created.
    if not request_id:
        return ""
    return f"{contract.SESSION_ID_PREFIX}-" + hashlib.sha256(request_id.encode()).hexdigest()[:20]


def _first_update(execution: AgentExecution) -> common_pb2.ExecutionUpdate:
    """Event 1 of an agent execution: PENDING (or queued) with the user message."""
    user_message = common_pb2.Message(
        id=contract.user_message_id(execution.id),
        role=common_pb2.MESSAGE_ROLE_USER,
        content=execution.message,
    )
    user_message.create_time.GetCurrentTime()
    queued_behind = execution.status.queued_behind
    return common_pb2.ExecutionUpdate(
        phase=common_pb2.EXECUTION_PHASE_PENDING,
        messages=[user_message],
        reason=f"queued behind {queued_behind}" if queued_behind else "created",
    )


@dataclass
class _SessionLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class SessionLocks:
    """One asyncio lock per session, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, _SessionLock] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, session_id: str) -> AsyncIterator[None]:
        """Hold the lock of ``session_id``; its entry goes when its last user leaves."""
        entry = self._locks.setdefault(session_id, _SessionLock())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._locks[session_id]


class AgentExecutions(Executions[AgentExecution, CreateRequest]):
    """Agent executions: the shared service plus agent and session handling on Create."""

    workflow_type = contract.AGENT_EXECUTION_WORKFLOW

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Creates and dequeues of one session are serialized: threads never see two
        # executions writing at once, and the queue order is the creation order.
        self._session_locks = SessionLocks()
        self._background: set[asyncio.Task[Any]] = set()

    def _repository(self, db: store.Store) -> store.AgentExecutionRepository:
        return db.agent_executions

    def merge(
        self,
        execution: AgentExecution,
        update: common_pb2.ExecutionUpdate,
        source: str,
        actor: common_pb2.Actor | None = None,
    ) -> None:
        """Merge a report into an agent execution (see :func:`merge_agent_update`)."""
        merge_agent_update(execution, update, source, actor)

    def orchestrator_queue(self) -> str:
        """The agent execution orchestrator queue."""
        return self._queues.agent_execution_orchestrator_task_queue

    def runner_queue(self) -> str:
        """The default agent runner queue."""
        return self._queues.agent_execution_runner_task_queue

    def run_timeout(self) -> timedelta:
        """The agent workflow's run timeout."""
        return self.settings.agent_run_timeout

    def workflow_input(
        self, execution: AgentExecution, policy: activities_pb2.ActivityPolicy
    ) -> activities_pb2.AgentExecutionWorkflowInput:
        """The agent workflow's input: the execution, its session and the policy."""
        return activities_pb2.AgentExecutionWorkflowInput(
            execution_id=execution.id, session_id=execution.session_id, policy=policy
        )

    async def create(self, request: CreateRequest) -> AgentExecution:
        """Validate a Create request, persist PENDING, start the workflow (or enqueue it).

        Raises:
            InvalidArgumentError: A field of the request is invalid, or its request_id was
                used for another request.
            store.NotFoundError: The agent or session does not exist.
            FailedPreconditionError: The session has an execution in flight and the
                request's multitask strategy is reject.
            WorkflowStartError: Temporal did not start the workflow; the execution is
                persisted FAILED with the reason.
        """
        validate_create_agent_execution(request, self.settings.max_message_chars)
        spec = request.execution
        agent = await self._db.agents.get(spec.agent)
        session_id = spec.session_id or _session_for_request(request.request_id)
        # A new session without a request_id is known to no one else: nothing to serialize
        # (one shared lock there made every such Create wait for the one before it).
        async with self._session_locks.hold(session_id) if session_id else nullcontext():
            new_session = None
            in_flight = []
            if spec.session_id:
                await self._check_session(session_id, agent.name)
                in_flight = await self.in_flight(session_id)
            else:
                # A new session and its thread are stored with the execution, in one commit;
                # a retried request (same request_id) finds them there.
                session_id = session_id or store.new_id(contract.SESSION_ID_PREFIX)
                new_session = self._db.threads.for_new_session(
                    session_pb2.Session(id=session_id, agent=agent.name)
                )
            for execution in in_flight:
                if request.request_id and execution.request_id == request.request_id:
                    return await self.create_duplicate(execution, request)
            queued_behind = await self._multitask(request, in_flight)
            execution = self._new_execution(
                request, agent.name, session_id, queued_behind, agent.runner_queue
            )
            return await self.persist_and_start(
                execution,
                _first_update(execution),
                request_key=request.request_id,
                fingerprint=request_fingerprint(request),
                start=not queued_behind,
                then=new_session,
            )

    async def create_duplicate(
        self, original: AgentExecution, request: CreateRequest
    ) -> AgentExecution:
        """Answer a repeated request_id with the original execution, if the bodies agree."""
        execution = self._new_execution(
            request, original.agent, original.session_id, "", original.runner_queue
        )
        created, _ = await self._repo.create_once(
            execution,
            request.request_id,
            request_fingerprint(request),
            self.first_event(_first_update(execution)),
        )
        return await self.get(created.id)

    def _new_execution(
        self,
        request: CreateRequest,
        agent: str,
        session_id: str,
        queued_behind: str,
        runner_queue: str,
    ) -> AgentExecution:
        spec = request.execution
        execution_id = store.new_id(contract.AGENT_EXECUTION_ID_PREFIX)
        return AgentExecution(
            id=execution_id,
            agent=agent,
            session_id=session_id,
            message=spec.message,
            labels=dict(spec.labels),
            request_id=request.request_id,
            priority=spec.priority or DEFAULT_PRIORITY,
            workflow_id=contract.agent_workflow_id(execution_id),
            # The agent's runner pool, else the default: start_workflow puts it in the memo.
            runner_queue=runner_queue or self.runner_queue(),
            status=agent_execution_pb2.AgentExecutionStatus(
                phase=common_pb2.EXECUTION_PHASE_PENDING, queued_behind=queued_behind
            ),
        )

    async def _multitask(
        self,
        request: CreateRequest,
        in_flight: list[AgentExecution],
    ) -> str:
        """Apply the multitask strategy; return the execution to queue behind, if any."""
        if not in_flight:
            return ""
        strategy = request.multitask_strategy or common_pb2.MULTITASK_STRATEGY_ENQUEUE
        newest = in_flight[-1]
        if strategy == common_pb2.MULTITASK_STRATEGY_REJECT:
            raise FailedPreconditionError(
                f"session {newest.session_id} has execution {newest.id} in flight "
                "(multitask_strategy=reject)",
                reason_code="SESSION_BUSY",
                execution_id=newest.id,
            )
        if strategy == common_pb2.MULTITASK_STRATEGY_INTERRUPT:
            for execution in in_flight:
                await self.cancel(execution.id)
        return newest.id

    async def in_flight(self, session_id: str) -> list[AgentExecution]:
        """The session's PENDING and RUNNING executions, oldest first."""
        found: list[AgentExecution] = []
        for phase in (common_pb2.EXECUTION_PHASE_PENDING, common_pb2.EXECUTION_PHASE_RUNNING):
            found += await self.list_all({"session_id": session_id, "phase": phase})
        return sorted(found, key=lambda e: (e.create_time.ToNanoseconds(), e.id))

    async def on_terminal(self, execution: AgentExecution) -> None:
        """Start the session's next queued execution, in the background."""
        if not execution.session_id:
            return
        task = asyncio.create_task(self.dequeue(execution.session_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def release_if_queued(self, execution: AgentExecution) -> bool | None:
        """Dequeue the session of a queued execution (None if it is not queued)."""
        if not execution.status.queued_behind:
            return None
        return bool(await self.dequeue(execution.session_id))

    async def dequeue(self, session_id: str) -> str:
        """Start the oldest queued execution of a session once nothing else runs in it.

        Returns:
            The ID of the execution started, or "" when none was.
        """
        async with self._session_locks.hold(session_id):
            in_flight = await self.in_flight(session_id)
            if not in_flight or not in_flight[0].status.queued_behind:
                return ""  # something still runs, or nothing waits
            head = in_flight[0]

            def release(execution: AgentExecution) -> None:
                execution.status.queued_behind = ""

            started = await self._repo.update(head.id, release)
            self._hub.publish(head.id)
            logger.info("dequeued", extra={"execution_id": head.id})
            try:
                await self.start_workflow(started)
            except WorkflowStartError:
                pass  # persisted FAILED; its on_terminal dequeues the next one
            return head.id

    async def list(
        self, request: agent_execution_pb2.ListAgentExecutionsRequest
    ) -> agent_execution_pb2.ListAgentExecutionsResponse:
        """The List RPC: one page, filtered by agent, session and phase."""
        filters: dict[str, str | int] = {}
        if request.agent:
            filters["agent"] = request.agent
        if request.session_id:
            filters["session_id"] = request.session_id
        if request.phase:
            filters["phase"] = int(request.phase)
        items, token = await self.list_page(filters, request)
        return agent_execution_pb2.ListAgentExecutionsResponse(
            executions=items, next_page_token=token
        )

    async def _check_session(self, session_id: str, agent: str) -> None:
        """Check that the requested session exists and is the agent's.

        Raises:
            store.NotFoundError: No such session.
            InvalidArgumentError: The session belongs to another agent.
        """
        session = await self._db.sessions.get(session_id)
        if session.agent and session.agent != agent:
            raise InvalidArgumentError(
                "execution.session_id",
                f"session {quote(session_id)} belongs to agent {quote(session.agent)}, "
                f"not {quote(agent)}",
            )
