"""The execution service shared by agent and workflow executions.

Execute, Get, List, Cancel, Watch and progress reports have one code path for both
kinds; each kind's subclass of :class:`Executions` overrides its hooks for what differs
(repository, merge rules, Temporal workflow, queues and timeout, and Create itself).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.client import Client
from temporalio.common import Priority
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

import store
from orchestrator.actors import current_actor, describe
from orchestrator.changes import ExecutionChanges
from orchestrator.errors import (
    ExecutionDeadlineError,
    InvalidArgumentError,
    NotFoundError,
    WorkflowStartError,
    invalid_page_token,
)
from orchestrator.events import EventHub
from orchestrator.paging import every_page
from orchestrator.status import IllegalTransitionError
from orchestrator.validation import duration_seconds, timestamp_nanos
from polyfleet import contract
from polyfleet.config import ExecutionSettings, TaskQueueSettings
from polyfleet.contract import is_terminal
from polyfleet.quoting import quote
from polyfleet.telemetry import metrics, tracing
from polyfleet.telemetry.metrics import (
    EXECUTION_DURATION,
    EXECUTION_QUEUE_WAIT,
    EXECUTION_REPORTS,
    EXECUTIONS_CREATED,
    EXECUTIONS_ENDED,
    WATCH_SUBSCRIBERS,
)
from polyfleet.v1 import (
    activities_pb2,
    agent_execution_pb2,
    common_pb2,
    fleet_pb2,
    runner_pb2,
    workflow_execution_pb2,
)

logger = logging.getLogger(__name__)

DEFAULT_PRIORITY = 3

# Watchers and waiters re-read the store at least this often, as a safety net for wake-ups.
_POLL_SECONDS = 5.0


# Every execution message has id, workflow_id and status.phase/last_sequence.
E = TypeVar("E", agent_execution_pb2.AgentExecution, workflow_execution_pb2.WorkflowExecution)
# The kind's Create request; both have request_id.
C = TypeVar(
    "C",
    agent_execution_pb2.CreateAgentExecutionRequest,
    workflow_execution_pb2.CreateWorkflowExecutionRequest,
)
# The answers to a progress report: RunnerService's and the local UpdateStatus's.
_Ack = TypeVar("_Ack", runner_pb2.ReportProgressResponse, activities_pb2.UpdateStatusOutput)


@dataclass(frozen=True)
class ReportResult(Generic[E]):
    """Outcome of applying one progress report."""

    execution: E
    event: common_pb2.ExecutionEvent | None
    applied: bool

    def as_message(self, message_type: type[_Ack]) -> _Ack:
        """This outcome as ``message_type``: both answers carry sequence, applied, phase."""
        return message_type(
            sequence=self.event.sequence if self.event else 0,
            applied=self.applied,
            phase=self.execution.status.phase,
        )


def request_fingerprint(request: C) -> bytes:
    """Digest of what a Create request asks for, to tell a retry from a different request."""
    body = type(request)()
    body.CopyFrom(request)
    body.ClearField("request_id")
    return hashlib.sha256(body.SerializeToString(deterministic=True)).digest()


def _duration(value: timedelta) -> Duration:
    duration = Duration()
    duration.FromTimedelta(value)
    return duration


def activity_policy(
    settings: ExecutionSettings, default_queue: str
) -> activities_pb2.ActivityPolicy:
    """The activity timeouts frozen into a new workflow, from configuration."""
    s = settings
    return activities_pb2.ActivityPolicy(
        default_activity_task_queue=default_queue,
        schedule_to_start_timeout=_duration(s.activity_schedule_to_start_timeout),
        ensure_thread_start_to_close_timeout=_duration(s.ensure_thread_start_to_close_timeout),
        execute_graphton_start_to_close_timeout=_duration(
            s.execute_graphton_start_to_close_timeout
        ),
        execute_workflow_start_to_close_timeout=_duration(
            s.execute_workflow_start_to_close_timeout
        ),
        heartbeat_timeout=_duration(s.activity_heartbeat_timeout),
        update_status_start_to_close_timeout=_duration(s.update_status_start_to_close_timeout),
        execute_workflow_max_attempts=s.execute_workflow_max_attempts,
    )


def system_message(message_id: str, content: str) -> common_pb2.Message:
    """A system message for an execution's status."""
    message = common_pb2.Message(
        id=message_id, role=common_pb2.MESSAGE_ROLE_SYSTEM, content=content
    )
    message.create_time.GetCurrentTime()
    return message


class ListRequest(Protocol):
    """The paging, created-time range and label fields of every List…Executions request."""

    @property
    def page_size(self) -> int:
        """Page size; non-positive means the default."""

    @property
    def page_token(self) -> str:
        """Token of the page to return; empty for the first."""

    @property
    def created_after(self) -> Timestamp:
        """Lower bound of the create time; unset means none."""

    @property
    def created_before(self) -> Timestamp:
        """Upper bound of the create time; unset means none."""

    @property
    def labels(self) -> Mapping[str, str]:
        """Labels every execution must carry."""

    @property
    def view(self) -> common_pb2.ExecutionView.ValueType:
        """How much of each execution to return; unset means BASIC."""


class Executions(ABC, Generic[E, C]):
    """Persists executions of one kind, starts their workflows and serves their status.

    A subclass per kind sets ``workflow_type`` and overrides the abstract hooks (Create,
    repository, merge rules, queues, run timeout, workflow input); ``on_terminal`` and
    ``release_if_queued`` are hooks with a default for kinds without queues.
    """

    # The Temporal workflow type that runs an execution of this kind.
    workflow_type: ClassVar[str]

    def __init__(
        self,
        db: store.Store,
        temporal: Client,
        hub: EventHub,
        queues: TaskQueueSettings,
        settings: ExecutionSettings,
        *,
        changes: ExecutionChanges | None = None,
        after_persist: Callable[[str], None] | None = None,
    ) -> None:
        self._db = db
        self._repo: store.ExecutionRepository[E] = self._repository(db)
        self._temporal = temporal
        self._hub = hub
        # The change stream of every execution (FleetService.WatchExecutions), shared by
        # both kinds; a service built alone (unit tests) gets its own.
        self._changes = changes or ExecutionChanges()
        self._queues = queues
        self.settings = settings
        # Called with a new execution's ID between persisting it and starting its workflow;
        # tests kill the process there to prove the reconciler repairs that window.
        self._after_persist = after_persist
        # Execute calls waiting for an execution's terminal state, handed the execution by
        # the report that makes it terminal: no store read per intermediate report.
        self._terminal_waiters: dict[str, list[asyncio.Future[E]]] = {}

    @abstractmethod
    def _repository(self, db: store.Store) -> store.ExecutionRepository[E]:
        """The store's repository of this kind."""

    @abstractmethod
    def merge(
        self,
        execution: E,
        update: common_pb2.ExecutionUpdate,
        source: str,
        actor: common_pb2.Actor | None = None,
    ) -> None:
        """Merge a report from ``source`` by ``actor`` into ``execution`` (orchestrator.status)."""

    @abstractmethod
    def orchestrator_queue(self) -> str:
        """The task queue of this kind's workflows."""

    @abstractmethod
    def runner_queue(self) -> str:
        """The default runner task queue of this kind, for executions without their own."""

    @abstractmethod
    def run_timeout(self) -> timedelta:
        """The run timeout of this kind's workflows."""

    @abstractmethod
    def workflow_input(self, execution: E, policy: activities_pb2.ActivityPolicy) -> ProtoMessage:
        """The input message of this kind's workflow."""

    @abstractmethod
    async def create(self, request: C) -> E:
        """The Create RPC: validate ``request``, then :meth:`persist_and_start`."""

    async def execute(self, request: C, max_wait: Duration | None) -> E:
        """The Execute RPC: :meth:`create`, then wait for the terminal state.

        Args:
            request: The Create request.
            max_wait: The client's timeout; None for the default (see :meth:`execute_wait`).

        Raises:
            ExecutionDeadlineError: Not terminal in time; the execution keeps running.
        """
        wait = self.execute_wait(max_wait)
        execution = await self.create(request)
        return await self.wait_terminal(execution.id, wait)

    async def persist_and_start(
        self,
        execution: E,
        first: common_pb2.ExecutionUpdate,
        *,
        request_key: str = "",
        fingerprint: bytes = b"",
        start: bool = True,
        then: store.WriteStep | None = None,
    ) -> E:
        """Persist a validated execution PENDING, log ``first`` as event 1, start its workflow.

        Args:
            execution: The execution to store, PENDING.
            first: Event 1 of its log.
            request_key: The client's ``request_id``: a repeat returns the original execution
                (also across restarts and when the repeats arrive concurrently).
            fingerprint: Digest of the request body; a repeated key with another body is
                refused.
            start: False to persist only (an execution enqueued behind another).
            then: Another write committed with the execution (its new session).

        Raises:
            InvalidArgumentError: ``request_key`` was used with a different request.
            WorkflowStartError: Temporal did not start the workflow; the execution is
                persisted FAILED with the reason.
        """
        # The execution, its request key and event 1 are one commit: a crash cannot leave an
        # execution without its first event (the user message), nor a retry return one.
        event = self.first_event(first)
        # The trace of the call creating it (docs/observability.md, "Traces").
        execution.trace_id = tracing.current_trace_id()
        if request_key:
            try:
                stored, created = await self._repo.create_once(
                    execution, request_key, fingerprint, event, then
                )
            except store.RequestKeyConflictError as err:
                raise InvalidArgumentError(
                    "request_id",
                    f"{quote(request_key)} was already used for a different request "
                    f"(execution {err.execution_id})",
                ) from None
            if not created:
                return await self.get(stored.id)
        else:
            stored = await self._repo.create(execution, event, then)
        execution_id = stored.id
        tracing.annotate(execution_id)
        EXECUTIONS_CREATED.add(1, kind=self.metric_kind, name=_definition(stored))
        logger.info(
            "created %s by %s",
            execution_id,
            describe(stored.created_by),
            extra={"execution_id": execution_id},
        )
        self._hub.publish(execution_id)
        # Before the workflow starts, so it precedes every phase change of the execution.
        self._changes.publish(fleet_pb2.EXECUTION_CHANGE_TYPE_CREATED, stored)
        if self._after_persist:
            self._after_persist(execution_id)
        if start:
            await self.start_workflow(stored)
        return await self.get(execution_id)

    def first_event(self, update: common_pb2.ExecutionUpdate) -> store.FirstEvent[E]:
        """Event 1 of a new execution's log: ``update``, from the API caller."""
        actor = current_actor()

        def merge(execution: E, change: common_pb2.ExecutionUpdate) -> None:
            execution.created_by.CopyFrom(actor)
            self.merge(execution, change, "api", actor)

        return store.FirstEvent(
            update=update,
            merge=merge,
            source="api",
            report_id="created",
        )

    async def start_workflow(self, execution: E) -> None:
        """Start the execution's Temporal workflow (already started counts as success).

        Raises:
            WorkflowStartError: Temporal refused; the execution is persisted FAILED.
        """
        execution_id = execution.id
        workflow_id = execution.workflow_id
        # Fixed at create from the agent's or workflow's runner_queue; an execution stored
        # before runner pools existed has none and goes to the default queue.
        runner_queue = execution.runner_queue or self.runner_queue()
        extra = {"execution_id": execution_id, "workflow_id": workflow_id}
        try:
            # Started later (queued, or by the reconciler): still in the execution's trace.
            with tracing.continuing(execution.trace_id):
                await self._temporal.start_workflow(
                    self.workflow_type,
                    self.workflow_input(execution, activity_policy(self.settings, runner_queue)),
                    id=workflow_id,
                    task_queue=self.orchestrator_queue(),
                    memo={contract.MEMO_ACTIVITY_TASK_QUEUE: runner_queue},
                    run_timeout=self.run_timeout(),
                    priority=Priority(priority_key=execution.priority or DEFAULT_PRIORITY),
                )
        except WorkflowAlreadyStartedError:
            logger.info("workflow already started", extra=extra)
            return
        except Exception as err:
            reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            logger.error("workflow start failed: %s", reason, extra=extra)
            await self.report(
                execution_id,
                "start-failed",
                "api",
                common_pb2.ExecutionUpdate(
                    phase=common_pb2.EXECUTION_PHASE_FAILED,
                    error=common_pb2.ExecutionError(
                        type=contract.WORKFLOW_START_FAILED, message=reason, step="StartWorkflow"
                    ),
                    messages=[
                        system_message(
                            f"{execution_id}/start-failed",
                            f"The execution's workflow could not be started: {reason}",
                        )
                    ],
                ),
            )
            raise WorkflowStartError(execution_id, reason) from err
        logger.info("started workflow on runner queue %s", runner_queue, extra=extra)

    async def get(
        self,
        execution_id: str,
        view: common_pb2.ExecutionView.ValueType = common_pb2.EXECUTION_VIEW_FULL,
    ) -> E:
        """Read one execution, in ``view`` (UNSPECIFIED means FULL, AIP-157's Get default).

        Raises:
            InvalidArgumentError: The ID is empty, or the view is not one this API knows.
            store.NotFoundError: No such execution.
        """
        if not execution_id:
            raise InvalidArgumentError("id", "must not be empty")
        resolved = _resolve_view(view, common_pb2.EXECUTION_VIEW_FULL)
        execution: E = await self._repo.get(execution_id, resolved)
        return execution

    async def list_page(
        self, filters: Mapping[str, str | int], request: ListRequest
    ) -> tuple[list[E], str]:
        """One page of a List request, narrowed to ``filters`` (the kind's filter fields).

        One filter is served from its index (``session_id``, ``agent``/``workflow``, then
        ``phase``); the created-time range narrows that index scan (an unset bound is the
        zero timestamp: no bound); labels are checked on the executions the scan yields.
        An unset view is BASIC (AIP-157's List default), so a page of large executions
        stays small. A page also ends early, with a next page token, before the execution
        that would take it over the byte budget ``list_page_max_bytes``, so it always fits
        in a gRPC message.

        Returns:
            The executions, newest first, and the next page token ("" after the last).
        """
        view = _resolve_view(request.view, common_pb2.EXECUTION_VIEW_BASIC)
        if request.page_size < 0:
            raise InvalidArgumentError("page_size", "must not be negative")
        return await self._read_page(
            filters,
            request.page_size,
            request.page_token,
            created_after=timestamp_nanos(request.created_after, "created_after"),
            created_before=timestamp_nanos(request.created_before, "created_before"),
            labels=dict(request.labels),
            view=view,
        )

    async def list_all(self, filters: Mapping[str, str | int]) -> list[E]:
        """Every execution matching ``filters``, newest first, in full (all pages)."""
        return await every_page(lambda token: self._read_page(filters, 500, token))

    async def _read_page(
        self,
        filters: Mapping[str, str | int],
        page_size: int,
        page_token: str,
        *,
        created_after: int = 0,
        created_before: int = 0,
        labels: Mapping[str, str] | None = None,
        view: common_pb2.ExecutionView.ValueType = common_pb2.EXECUTION_VIEW_FULL,
    ) -> tuple[list[E], str]:
        try:
            items, token = await self._repo.list(
                filters=dict(filters),
                page_size=page_size,
                page_token=page_token,
                created_after=created_after,
                created_before=created_before,
                labels=labels or None,
                view=view,
                max_bytes=self.settings.list_page_max_bytes,
            )
        except store.InvalidPageTokenError:
            raise invalid_page_token() from None
        return list(items), token

    async def report(
        self,
        execution_id: str,
        report_id: str,
        source: str,
        update: common_pb2.ExecutionUpdate,
        then: store.WriteStep | None = None,
    ) -> ReportResult[E]:
        """Merge a report into the status, append it to the event log, publish it.

        A report whose ``report_id`` was applied before is acknowledged, not re-applied.
        ``then`` is another store write committed with the report (see
        ``store.ExecutionRepository.apply_report``).

        Raises:
            store.NotFoundError: No such execution.
            InvalidArgumentError: A runner's report sets a terminal phase, or an output
                in the report is over ``max_output_bytes`` (a runner must fail the
                execution with OutputTooLarge instead).
            IllegalTransitionError: The report would change a terminal execution or
                make an illegal phase change; it is not applied.
        """
        try:
            check_report_source(source, update)
            check_output_size(update, self.settings.max_output_bytes)
        except InvalidArgumentError:
            self._count_report(source, "rejected", "INVALID_ARGUMENT")
            raise
        # Read here, in the caller's context: the merge runs in the store's writer thread.
        actor = current_actor()
        # The phase change the committed merge made (the merge may run more than once).
        change: list[tuple[int, int]] = []

        def merge(execution: E, delta: common_pb2.ExecutionUpdate) -> None:
            before = execution.status.phase
            change.clear()
            self.merge(execution, delta, source, actor)
            if execution.status.phase != before:
                change.append((before, execution.status.phase))

        try:
            execution, event, applied = await self._repo.apply_report(
                execution_id, report_id, source, update, merge, then
            )
        except IllegalTransitionError as err:
            self._count_report(source, "rejected", "FAILED_PRECONDITION")
            logger.warning(
                "report %s from %s not applied: %s",
                report_id,
                source,
                err,
                extra={"execution_id": execution_id},
            )
            raise
        self._count_report(source, "applied" if applied else "duplicate", "")
        if applied:
            if change:
                # Every phase change is a report (runner, UpdateStatus, reconciler, a
                # failed start, a cancel without a workflow): published here, committed.
                self._changes.publish(fleet_pb2.EXECUTION_CHANGE_TYPE_PHASE_CHANGED, execution)
            self._record_phase_changes(execution, change)
            for before, after in change:
                logger.info(
                    "execution %s phase %s -> %s by %s via %s",
                    execution_id,
                    contract.phase_name(before),
                    contract.phase_name(after),
                    describe(actor),
                    source,
                    extra={"execution_id": execution_id},
                )
            self._hub.publish(execution_id)
            if update.phase and is_terminal(update.phase):
                self._hand_over(execution)
                await self.on_terminal(execution)
        return ReportResult(execution=execution, event=event, applied=applied)

    def _hand_over(self, execution: E) -> None:
        """Give a terminal ``execution`` to the Execute calls waiting for it, in the FULL view."""
        waiters = self._terminal_waiters.get(execution.id)
        if not waiters:
            return
        # As a read returns it: the stored form keeps the final answer once (store/views.py).
        full = type(execution)()
        full.CopyFrom(execution)
        store.apply_view(full, common_pb2.EXECUTION_VIEW_FULL)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(full)

    async def on_terminal(self, execution: E) -> None:
        """Called once when an execution reaches its terminal phase."""

    @property
    def metric_kind(self) -> str:
        """The ``kind`` label of this kind's metrics: ``agent`` or ``workflow``."""
        return "agent" if self.workflow_type == contract.AGENT_EXECUTION_WORKFLOW else "workflow"

    def _count_report(self, source: str, result: str, reason: str) -> None:
        EXECUTION_REPORTS.add(1, kind=self.metric_kind, source=source, result=result, reason=reason)

    def _record_phase_changes(self, execution: E, change: list[tuple[int, int]]) -> None:
        """Queue wait on RUNNING; the end, with the duration, on a terminal phase."""
        if not change or not metrics.enabled():
            return
        kind, name = self.metric_kind, _definition(execution)
        age = max(0.0, (time.time_ns() - execution.create_time.ToNanoseconds()) / 1e9)
        for _, after in change:
            if after == common_pb2.EXECUTION_PHASE_RUNNING:
                EXECUTION_QUEUE_WAIT.record(age, kind=kind, name=name)
            elif is_terminal(after):
                phase = contract.phase_name(after)
                EXECUTIONS_ENDED.add(1, kind=kind, name=name, phase=phase)
                EXECUTION_DURATION.record(age, kind=kind, name=name, phase=phase)

    async def release_if_queued(self, execution: E) -> bool | None:
        """Start ``execution`` if it waits in a queue that may move now.

        Returns:
            None when the execution is not queued (this kind has no queues); otherwise
            whether a queued execution was started.
        """
        return None

    def execute_wait(self, timeout: Duration | None) -> float:
        """Seconds a synchronous Execute waits: the default, or the client's, bounded.

        Raises:
            InvalidArgumentError: The client's timeout is out of range.
        """
        limit = self.settings.execute_max_wait.total_seconds()
        if timeout is None:
            return self.settings.execute_default_wait.total_seconds()
        wait = duration_seconds(timeout, "timeout")
        if wait <= 0 or wait > limit:
            raise InvalidArgumentError("timeout", f"must be more than 0 s and at most {limit:g} s")
        return wait

    async def wait_terminal(self, execution_id: str, wait_seconds: float) -> E:
        """Wait until the execution is terminal.

        Raises:
            ExecutionDeadlineError: Not terminal within ``wait_seconds``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        # Registered before the first read, so a terminal report between the read and the
        # wait still resolves it.
        terminal: asyncio.Future[E] = loop.create_future()
        waiters = self._terminal_waiters.setdefault(execution_id, [])
        waiters.append(terminal)
        try:
            while True:
                execution = await self.get(execution_id)
                if is_terminal(execution.status.phase):
                    return execution
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise ExecutionDeadlineError(execution_id, wait_seconds)
                # The store is re-read now and then as a safety net for the hand-over.
                done, _ = await asyncio.wait((terminal,), timeout=min(remaining, _POLL_SECONDS))
                if done:
                    return terminal.result()
        finally:
            waiters.remove(terminal)
            if not waiters:
                del self._terminal_waiters[execution_id]

    async def cancel(self, execution_id: str) -> E:
        """Request cancellation; the workflow persists CANCELLED once the runner stops.

        Cancelling a terminal execution returns it unchanged. An execution whose
        workflow does not exist (it never started) is persisted CANCELLED here.
        """
        execution = await self.get(execution_id)
        if is_terminal(execution.status.phase):
            return execution
        workflow_id = execution.workflow_id
        extra = {"execution_id": execution_id, "workflow_id": workflow_id}
        requester = current_actor()

        def note_requester(stored: E) -> None:
            # The first request counts; a terminal execution keeps its story as it is.
            if not is_terminal(stored.status.phase) and not stored.HasField("cancel_requested_by"):
                stored.cancel_requested_by.CopyFrom(requester)

        # Before asking Temporal, so the CANCELLED transition can name who asked.
        await self._repo.update(execution_id, note_requester)
        try:
            await self._temporal.get_workflow_handle(workflow_id).cancel()
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
                            system_message(
                                f"{execution_id}/cancelled",
                                "Execution cancelled before its workflow ran.",
                            )
                        ],
                    ),
                )
            except IllegalTransitionError:
                pass  # it reached a terminal phase meanwhile; that phase stands
        else:
            logger.info(
                "execution %s cancellation requested by %s",
                execution_id,
                describe(current_actor()),
                extra=extra,
            )
        return await self.get(execution_id)

    async def watch(
        self, execution_id: str, after_sequence: int = 0
    ) -> AsyncIterator[E | common_pb2.ExecutionEvent]:
        """Yield the snapshot, then every logged event after ``after_sequence``.

        Events are read from the log, so a slow or reconnecting watcher loses
        nothing; the stream ends after the terminal event.
        """
        if after_sequence < 0:
            raise InvalidArgumentError("after_sequence", "must not be negative")
        snapshot = await self.get(execution_id)
        WATCH_SUBSCRIBERS.add(1)
        try:
            async for item in self._follow(execution_id, snapshot, after_sequence):
                yield item
        finally:
            WATCH_SUBSCRIBERS.add(-1)

    async def _follow(
        self, execution_id: str, snapshot: E, after_sequence: int
    ) -> AsyncIterator[E | common_pb2.ExecutionEvent]:
        yield snapshot
        last = after_sequence
        terminal = is_terminal(snapshot.status.phase)
        while True:
            changed = self._hub.signal(execution_id)
            events = await self._repo.events(execution_id, after_sequence=last)
            for event in events:
                yield event
                last = event.sequence
                if is_terminal(event.phase):
                    return
            if events:
                continue
            if terminal:
                # The terminal event is at or before `last`; nothing more will come.
                return
            try:
                await asyncio.wait_for(changed.wait(), _POLL_SECONDS)
            except TimeoutError:
                current = await self.get(execution_id)
                terminal = is_terminal(current.status.phase)


# Report sources that may end an execution: its workflow (UpdateStatus), the API (a
# failed start, a cancel without a workflow) and the reconciler. A runner reports
# progress only; its activity's result is what the workflow turns into the end.
RUNNER_SOURCE = "runner"


def check_report_source(source: str, update: common_pb2.ExecutionUpdate) -> None:
    """Refuse a runner's report that sets a terminal phase, whoever sent it.

    Raises:
        InvalidArgumentError: Names ``update.phase``; nothing of the report is applied.
    """
    if source == RUNNER_SOURCE and is_terminal(update.phase):
        raise InvalidArgumentError(
            "update.phase",
            f"{contract.phase_name(update.phase)} is terminal: only the execution's workflow "
            "ends an execution; a runner reports progress and returns its result (or "
            "raises its error) from its activity instead",
        )


def check_output_size(update: common_pb2.ExecutionUpdate, limit: int) -> None:
    """Refuse a report whose answer, output or a message is larger than ``limit`` bytes.

    Conforming runners never send one (they fail the execution with OutputTooLarge); this
    keeps any other runner from storing an execution too large to read back.

    Raises:
        InvalidArgumentError: Names the field, its size and the limit.
    """
    for field, _, size in contract.oversized_outputs(update, limit):
        raise InvalidArgumentError(
            field,
            f"is {size} bytes; the limit is {limit} bytes (POLYFLEET_MAX_OUTPUT_BYTES): "
            f"fail the execution with error type {contract.OUTPUT_TOO_LARGE} instead",
        )


def _resolve_view(
    view: common_pb2.ExecutionView.ValueType, default: common_pb2.ExecutionView.ValueType
) -> common_pb2.ExecutionView.ValueType:
    if view == common_pb2.EXECUTION_VIEW_UNSPECIFIED:
        return default
    if view not in (common_pb2.EXECUTION_VIEW_BASIC, common_pb2.EXECUTION_VIEW_FULL):
        raise InvalidArgumentError("view", f"unknown ExecutionView {int(view)}")
    return view


class ExecutionRegistry:
    """Finds the service of an execution from its ID prefix (``aex-`` or ``wex-``)."""

    def __init__(self, by_prefix: Mapping[str, Executions[Any, Any]]) -> None:
        self._by_prefix = dict(by_prefix)

    def for_id(self, execution_id: str) -> Executions[Any, Any]:
        """The service owning ``execution_id``.

        Raises:
            NotFoundError: The ID has no known prefix.
        """
        prefix = execution_id.split("-", 1)[0]
        service = self._by_prefix.get(prefix)
        if service is None:
            raise NotFoundError("execution", execution_id)
        return service


def _definition(execution: Any) -> str:
    """The ``name`` label: the execution's agent or workflow (bounded by the definitions)."""
    return str(getattr(execution, "agent", "") or getattr(execution, "workflow", ""))
