"""The agent execution service: create, read, watch and report, shared by every API path."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from google.protobuf.duration_pb2 import Duration
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import store
from orchestrator.errors import (
    ExecutionDeadlineError,
    InvalidArgumentError,
    NotFoundError,
    WorkflowStartError,
    invalid_page_token,
)
from orchestrator.events import EventHub
from orchestrator.status import IllegalTransitionError, is_terminal, merge_agent_update
from orchestrator.validation import validate_create_agent_execution
from polyfleet import contract
from polyfleet.config import ExecutionSettings, TaskQueueSettings
from polyfleet.v1 import activities_pb2, agent_execution_pb2, common_pb2, session_pb2

logger = logging.getLogger(__name__)

AgentExecution = agent_execution_pb2.AgentExecution

# Watchers re-read the log at least this often, as a safety net for wake-ups.
_WATCH_POLL_SECONDS = 5.0


@dataclass(frozen=True)
class ReportResult:
    """Outcome of applying one progress report."""

    execution: AgentExecution
    event: common_pb2.ExecutionEvent | None
    applied: bool


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


class AgentExecutions:
    """Creates agent executions, starts their workflows and serves their status.

    The gRPC servicers, RunnerService and the local UpdateStatus activity all go
    through this one class, so there is exactly one code path per operation.
    """

    def __init__(
        self,
        db: store.Store,
        temporal: Client,
        hub: EventHub,
        queues: TaskQueueSettings,
        settings: ExecutionSettings,
    ) -> None:
        self._db = db
        self._temporal = temporal
        self._hub = hub
        self._queues = queues
        self._settings = settings

    def activity_policy(self) -> activities_pb2.ActivityPolicy:
        """The timeouts frozen into a new workflow, from configuration."""
        s = self._settings
        return activities_pb2.ActivityPolicy(
            default_activity_task_queue=self._queues.agent_execution_runner_task_queue,
            schedule_to_start_timeout=_duration(
                s.activity_schedule_to_start_timeout.total_seconds()
            ),
            ensure_thread_start_to_close_timeout=_duration(
                s.ensure_thread_start_to_close_timeout.total_seconds()
            ),
            execute_graphton_start_to_close_timeout=_duration(
                s.execute_graphton_start_to_close_timeout.total_seconds()
            ),
            execute_workflow_start_to_close_timeout=_duration(
                s.execute_workflow_start_to_close_timeout.total_seconds()
            ),
            heartbeat_timeout=_duration(s.activity_heartbeat_timeout.total_seconds()),
            update_status_start_to_close_timeout=_duration(
                s.update_status_start_to_close_timeout.total_seconds()
            ),
        )

    async def create(
        self, request: agent_execution_pb2.CreateAgentExecutionRequest
    ) -> AgentExecution:
        """Validate, persist PENDING, start the workflow, return the execution.

        Raises:
            InvalidArgumentError: A field of the request is invalid.
            NotFoundError: The agent or session does not exist.
            WorkflowStartError: Temporal did not start the workflow; the execution is
                persisted FAILED with the reason.

        """
        validate_create_agent_execution(request)
        spec = request.execution
        try:
            agent = await self._db.agents.get(spec.agent)
        except store.NotFoundError:
            raise NotFoundError("agent", spec.agent) from None
        session = await self._session_for(spec.session_id, agent.name)
        execution_id = store.new_id("aex")
        execution = AgentExecution(
            id=execution_id,
            agent=agent.name,
            session_id=session.id,
            message=spec.message,
            labels=dict(spec.labels),
            request_id=request.request_id,
            workflow_id=contract.agent_workflow_id(execution_id),
            status=agent_execution_pb2.AgentExecutionStatus(
                phase=common_pb2.EXECUTION_PHASE_PENDING
            ),
        )
        await self._db.agent_executions.create(execution)
        user_message = common_pb2.Message(
            id=f"{execution_id}/user", role=common_pb2.MESSAGE_ROLE_USER, content=spec.message
        )
        user_message.create_time.GetCurrentTime()
        await self.report(
            execution_id,
            "created",
            "api",
            common_pb2.ExecutionUpdate(
                phase=common_pb2.EXECUTION_PHASE_PENDING, messages=[user_message]
            ),
        )
        await self._start_workflow(execution)
        return await self.get(execution_id)

    async def _session_for(self, session_id: str, agent: str) -> session_pb2.Session:
        if not session_id:
            return await self._db.sessions.create(session_pb2.Session(agent=agent))
        try:
            session = await self._db.sessions.get(session_id)
        except store.NotFoundError:
            raise NotFoundError("session", session_id) from None
        if session.agent and session.agent != agent:
            raise InvalidArgumentError(
                "execution.session_id",
                f"session '{session_id}' belongs to agent '{session.agent}', not '{agent}'",
            )
        return session

    async def _start_workflow(self, execution: AgentExecution) -> None:
        runner_queue = self._queues.agent_execution_runner_task_queue
        try:
            await self._temporal.start_workflow(
                contract.AGENT_EXECUTION_WORKFLOW,
                activities_pb2.AgentExecutionWorkflowInput(
                    execution_id=execution.id,
                    session_id=execution.session_id,
                    policy=self.activity_policy(),
                ),
                id=execution.workflow_id,
                task_queue=self._queues.agent_execution_orchestrator_task_queue,
                memo={contract.MEMO_ACTIVITY_TASK_QUEUE: runner_queue},
                run_timeout=self._settings.agent_run_timeout,
            )
        except Exception as err:
            reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            logger.error(
                "workflow start failed: %s",
                reason,
                extra={"execution_id": execution.id, "workflow_id": execution.workflow_id},
            )
            await self.report(
                execution.id,
                "start-failed",
                "api",
                common_pb2.ExecutionUpdate(
                    phase=common_pb2.EXECUTION_PHASE_FAILED,
                    error=common_pb2.ExecutionError(
                        type="WorkflowStartFailed", message=reason, step="StartWorkflow"
                    ),
                    messages=[
                        common_pb2.Message(
                            id=f"{execution.id}/start-failed",
                            role=common_pb2.MESSAGE_ROLE_SYSTEM,
                            content=f"The execution's workflow could not be started: {reason}",
                        )
                    ],
                ),
            )
            raise WorkflowStartError(execution.id, reason) from err
        logger.info(
            "started workflow on runner queue %s",
            runner_queue,
            extra={"execution_id": execution.id, "workflow_id": execution.workflow_id},
        )

    async def execute(self, request: agent_execution_pb2.ExecuteAgentRequest) -> AgentExecution:
        """Create an execution and wait for its terminal state.

        Raises:
            InvalidArgumentError: The timeout is out of range, or Create's reasons.
            ExecutionDeadlineError: The wait timed out; the execution keeps running.
        """
        wait = self._execute_wait(request)
        execution = await self.create(request.request)
        return await self.wait_terminal(execution.id, wait)

    def _execute_wait(self, request: agent_execution_pb2.ExecuteAgentRequest) -> float:
        limit = self._settings.execute_max_wait.total_seconds()
        if not request.HasField("timeout"):
            return self._settings.execute_default_wait.total_seconds()
        wait = request.timeout.ToTimedelta().total_seconds()
        if wait <= 0 or wait > limit:
            raise InvalidArgumentError("timeout", f"must be more than 0 s and at most {limit:g} s")
        return wait

    async def wait_terminal(self, execution_id: str, wait_seconds: float) -> AgentExecution:
        """Wait until the execution is terminal.

        Raises:
            ExecutionDeadlineError: Not terminal within ``wait_seconds``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            signal = self._hub.signal(execution_id)
            execution = await self.get(execution_id)
            if is_terminal(execution.status.phase):
                return execution
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ExecutionDeadlineError(execution_id, wait_seconds)
            try:
                await asyncio.wait_for(signal.wait(), min(remaining, _WATCH_POLL_SECONDS))
            except TimeoutError:
                pass

    async def cancel(self, execution_id: str) -> AgentExecution:
        """Request cancellation; the workflow persists CANCELLED once the runner stops.

        Cancelling a terminal execution returns it unchanged. An execution whose
        workflow does not exist (it never started) is persisted CANCELLED here.
        """
        execution = await self.get(execution_id)
        if is_terminal(execution.status.phase):
            return execution
        extra = {"execution_id": execution_id, "workflow_id": execution.workflow_id}
        try:
            await self._temporal.get_workflow_handle(execution.workflow_id).cancel()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            logger.warning("cancel: workflow not found, cancelling in the store", extra=extra)
            try:
                await self.report(
                    execution_id,
                    "cancelled-without-workflow",
                    "api",
                    common_pb2.ExecutionUpdate(
                        phase=common_pb2.EXECUTION_PHASE_CANCELLED,
                        messages=[
                            common_pb2.Message(
                                id=f"{execution_id}/cancelled",
                                role=common_pb2.MESSAGE_ROLE_SYSTEM,
                                content="Execution cancelled before its workflow ran.",
                            )
                        ],
                    ),
                )
            except IllegalTransitionError:
                pass  # it reached a terminal phase meanwhile; that phase stands
        else:
            logger.info("cancellation requested", extra=extra)
        return await self.get(execution_id)

    async def get(self, execution_id: str) -> AgentExecution:
        """Read one execution.

        Raises:
            NotFoundError: No such execution.

        """
        if not execution_id:
            raise InvalidArgumentError("id", "must not be empty")
        try:
            return await self._db.agent_executions.get(execution_id)
        except store.NotFoundError:
            raise NotFoundError("agent execution", execution_id) from None

    async def list(
        self, request: agent_execution_pb2.ListAgentExecutionsRequest
    ) -> agent_execution_pb2.ListAgentExecutionsResponse:
        """List executions newest first, filtered and paginated."""
        filters: dict[str, str | int] = {}
        if request.agent:
            filters["agent"] = request.agent
        if request.session_id:
            filters["session_id"] = request.session_id
        if request.phase:
            filters["phase"] = int(request.phase)
        try:
            items, token = await self._db.agent_executions.list(
                filters=filters, page_size=request.page_size, page_token=request.page_token
            )
        except store.InvalidPageTokenError:
            raise invalid_page_token() from None
        return agent_execution_pb2.ListAgentExecutionsResponse(
            executions=items, next_page_token=token
        )

    async def report(
        self,
        execution_id: str,
        report_id: str,
        source: str,
        update: common_pb2.ExecutionUpdate,
    ) -> ReportResult:
        """Merge a report into the status, append it to the event log, publish it.

        A report whose ``report_id`` was applied before is acknowledged, not re-applied.

        Raises:
            NotFoundError: No such execution.
            IllegalTransitionError: The report would change a terminal execution or
                make an illegal phase change; it is not applied.

        """
        try:
            execution, event, applied = await self._db.agent_executions.apply_report(
                execution_id, report_id, source, update, merge_agent_update
            )
        except store.NotFoundError:
            raise NotFoundError("agent execution", execution_id) from None
        except IllegalTransitionError as err:
            logger.warning(
                "report %s from %s not applied: %s",
                report_id,
                source,
                err,
                extra={"execution_id": execution_id},
            )
            raise
        if applied:
            self._hub.publish(execution_id)
        return ReportResult(execution=execution, event=event, applied=applied)

    async def watch(
        self, execution_id: str, after_sequence: int = 0
    ) -> AsyncIterator[agent_execution_pb2.WatchAgentExecutionResponse]:
        """Stream the snapshot, then every logged event after ``after_sequence``.

        Events are read from the log, so a slow or reconnecting watcher loses
        nothing; the stream ends after the terminal event.
        """
        if after_sequence < 0:
            raise InvalidArgumentError("after_sequence", "must not be negative")
        snapshot = await self.get(execution_id)
        yield agent_execution_pb2.WatchAgentExecutionResponse(snapshot=snapshot)
        last = after_sequence
        terminal = is_terminal(snapshot.status.phase)
        while True:
            signal = self._hub.signal(execution_id)
            events = await self._db.agent_executions.events(execution_id, after_sequence=last)
            for event in events:
                yield agent_execution_pb2.WatchAgentExecutionResponse(event=event)
                last = event.sequence
                if is_terminal(event.phase):
                    return
            if events:
                continue
            if terminal:
                # The terminal event is at or before `last`; nothing more will come.
                return
            try:
                await asyncio.wait_for(signal.wait(), _WATCH_POLL_SECONDS)
            except TimeoutError:
                terminal = is_terminal((await self.get(execution_id)).status.phase)
