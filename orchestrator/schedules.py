"""Workflow schedules: a document's top-level `schedule` as one Temporal Schedule.

Applying a workflow whose document has `schedule` creates or updates its Temporal Schedule
(:meth:`Schedules.sync`); a document without one, or deleting the workflow, deletes it. The
schedule's ID is derived from the workflow's name and this store's workflow-execution
orchestrator queue (one store per queue, ``orchestrator/ownership.py``), so two fleets on
one Temporal namespace never touch each other's schedules. Each action starts
``ScheduledWorkflowStart`` (``orchestrator/workflows/scheduled_start.py``), whose local
activity here creates the execution as CreateWorkflowExecution does, on behalf of the
schedule. At start-up :meth:`Schedules.reconcile` makes Temporal match the store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio import activity
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.exceptions import ApplicationError, TemporalError
from temporalio.service import RPCError, RPCStatusCode

import store
from orchestrator.actors import current_actor, describe
from orchestrator.auth.caller import Caller, calling_as
from orchestrator.errors import InvalidArgumentError, NotFoundError, UnavailableError
from orchestrator.paging import every_page
from orchestrator.validation import AGENT_NAME
from orchestrator.workflow_executions import WorkflowExecutions
from orchestrator.workflows.scheduled_start import (
    SCHEDULED_WORKFLOW_START,
    START_SCHEDULED_EXECUTION,
    WORKFLOW_GONE,
)
from polyfleet import contract
from polyfleet.dsl import InvalidDocumentError, load_document
from polyfleet.dsl.schedule import WorkflowSchedule, event_trigger_of, schedule_of
from polyfleet.quoting import quote
from polyfleet.v1 import schedule_pb2, workflow_execution_pb2, workflow_pb2

logger = logging.getLogger(__name__)

# Actions missed while Temporal could not take them are dropped after this long: a fleet
# back from an outage starts one execution, not the backlog of every missed one.
CATCHUP_WINDOW = timedelta(minutes=1)
# How long the one start of an `after` schedule stays possible past its time.
AFTER_WINDOW = timedelta(minutes=1)
# The ScheduledWorkflowStart workflow's run timeout (its local activity retries inside it).
START_RUN_TIMEOUT = timedelta(minutes=10)
MAX_REASON_CHARS = 200
_SHOWN = 10


def schedule_id_prefix(queue: str) -> str:
    """The ID prefix of the schedules of the store polling workflow-execution ``queue``."""
    return f"polyfleet/{queue}/schedule/"


def schedule_id(queue: str, workflow: str) -> str:
    """The Temporal Schedule ID of ``workflow``'s schedule (deterministic)."""
    return f"{schedule_id_prefix(queue)}{workflow}"


def schedule_caller(workflow: str) -> Caller:
    """Who creates the executions of ``workflow``'s schedule (their ``created_by``)."""
    return Caller(f"schedule/{workflow}", None, "schedule")


def workflow_schedule(definition: workflow_pb2.Workflow) -> WorkflowSchedule | None:
    """The `schedule` of a stored workflow's document; None without one (or unreadable)."""
    try:
        return schedule_of(load_document(definition.document))
    except (InvalidDocumentError, ValueError):
        # Stored documents were validated; one that no longer reads has no schedule.
        return None


def event_trigger(definition: workflow_pb2.Workflow) -> Mapping[str, Any] | None:
    """The `schedule.on` of a stored workflow's document; None without one (or unreadable).

    No Temporal Schedule backs it: ``orchestrator/event_schedules.py`` follows the events.
    """
    try:
        return event_trigger_of(load_document(definition.document))
    except (InvalidDocumentError, ValueError):
        return None


def _pause_cursor(definition: workflow_pb2.Workflow) -> str:
    # By the workflow's ID: a workflow deleted and created again starts unpaused.
    return f"event-schedule-paused/{definition.id}"


async def event_schedule_pause(
    db: store.Store, definition: workflow_pb2.Workflow
) -> tuple[bool, str]:
    """Whether the `schedule.on` of ``definition`` is paused, and the note of the last change."""
    data = await db.cursors.get(_pause_cursor(definition))
    if data is None:
        return False, ""
    saved = json.loads(data)
    return bool(saved["paused"]), str(saved["note"])


def _update_time(definition: workflow_pb2.Workflow) -> datetime:
    if definition.HasField("update_time"):
        return definition.update_time.ToDatetime(tzinfo=UTC)
    return datetime.now(UTC)


def temporal_schedule(
    spec: WorkflowSchedule, workflow: str, queue: str, written: datetime
) -> Schedule:
    """The Temporal Schedule of a workflow's `schedule`.

    Args:
        spec: The document's schedule.
        workflow: The workflow's name (the action's argument).
        queue: The workflow-execution orchestrator queue (where ScheduledWorkflowStart runs).
        written: When the workflow was last written; `after` counts from it.

    Returns:
        ``every``: an interval (aligned to the Unix epoch); ``cron``: Temporal's cron
        string (UTC); ``after``: one action at ``written + after`` (an interval of one
        second bounded to that time, limited to one action).
    """
    state = ScheduleState()
    if spec.cron is not None:
        temporal_spec = ScheduleSpec(cron_expressions=[spec.cron])
    elif spec.every is not None:
        temporal_spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=spec.every)])
    else:
        at = written + (spec.after or timedelta())
        # Temporal fires on whole seconds: the first one at or after `at`.
        temporal_spec = ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=1))],
            start_at=at,
            end_at=at + AFTER_WINDOW,
        )
        state = ScheduleState(limited_actions=True, remaining_actions=1)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SCHEDULED_WORKFLOW_START,
            workflow,
            id=schedule_id(queue, workflow),
            task_queue=queue,
            run_timeout=START_RUN_TIMEOUT,
        ),
        spec=temporal_spec,
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=state,
    )


@contextmanager
def _temporal_errors(workflow: str, what: str) -> Iterator[None]:
    """Temporal's NOT_FOUND as NotFoundError, its other failures as UnavailableError."""
    try:
        yield
    except ScheduleAlreadyRunningError:
        raise
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NotFoundError("schedule of workflow", workflow) from None
        raise UnavailableError(
            f"Temporal could not {what} the schedule of workflow {quote(workflow)}: {err.message}"
        ) from err
    except TemporalError as err:
        # The RPC timed out or was cancelled: Temporal was not reached in time.
        raise UnavailableError(
            f"Temporal could not {what} the schedule of workflow {quote(workflow)}: {err}"
        ) from err


@dataclass(frozen=True)
class ReconcileResult:
    """What :meth:`Schedules.reconcile` changed: workflow names."""

    synced: tuple[str, ...]
    deleted: tuple[str, ...]


class Schedules:
    """The Temporal Schedules of this store's workflows, and ScheduleService.

    Args:
        db: The store (the workflows are the truth).
        temporal: The Temporal client.
        queue: The workflow-execution orchestrator queue.
    """

    def __init__(self, db: store.Store, temporal: Client, queue: str) -> None:
        self._db = db
        self._temporal = temporal
        self._queue = queue

    def _handle_id(self, workflow: str) -> str:
        return schedule_id(self._queue, workflow)

    # -- following the workflows -----------------------------------------------------

    async def sync(self, definition: workflow_pb2.Workflow) -> None:
        """Make the workflow's schedule match its document (create, update or delete).

        An update keeps a paused schedule paused.

        Raises:
            UnavailableError: Temporal refused or could not be reached; the workflow is
                stored, applying it again retries.
        """
        spec = workflow_schedule(definition)
        name = definition.name
        if spec is None:
            await self.remove(name)
            return
        schedule = temporal_schedule(spec, name, self._queue, _update_time(definition))
        try:
            with _temporal_errors(name, "create"):
                await self._temporal.create_schedule(self._handle_id(name), schedule)
            logger.info("schedule of workflow %s created: %s", quote(name), spec.describe())
            return
        except ScheduleAlreadyRunningError:
            pass

        def keep_state(current: ScheduleUpdateInput) -> ScheduleUpdate:
            old = current.description.schedule.state
            schedule.state.paused = old.paused
            schedule.state.note = old.note
            return ScheduleUpdate(schedule=schedule)

        with _temporal_errors(name, "update"):
            await self._temporal.get_schedule_handle(self._handle_id(name)).update(keep_state)
        logger.info("schedule of workflow %s updated: %s", quote(name), spec.describe())

    async def remove(self, workflow: str) -> bool:
        """Delete the workflow's schedule if it has one; whether it had."""
        try:
            with _temporal_errors(workflow, "delete"):
                await self._temporal.get_schedule_handle(self._handle_id(workflow)).delete()
        except NotFoundError:
            return False
        logger.info("schedule of workflow %s deleted", quote(workflow))
        return True

    async def reconcile(self) -> ReconcileResult:
        """Make Temporal's schedules match the stored workflows.

        Every workflow with `schedule` gets its schedule created, or updated to its document
        (paused ones stay paused); a schedule of this store without such a workflow (e.g.
        after the store was restored from a backup) is deleted.
        """
        workflows = await every_page(
            lambda token: self._db.workflows.list(page_size=1000, page_token=token)
        )
        declared = {w.name: w for w in workflows if workflow_schedule(w) is not None}
        synced: list[str] = []
        for name, definition in sorted(declared.items()):
            await self.sync(definition)
            synced.append(name)
        prefix = schedule_id_prefix(self._queue)
        deleted: list[str] = []
        async for listed in await self._temporal.list_schedules():
            if not listed.id.startswith(prefix):
                continue
            name = listed.id[len(prefix) :]
            if name not in declared and await self.remove(name):
                deleted.append(name)
        if synced or deleted:
            logger.info(
                "schedules reconciled: %d synced, %d without a workflow deleted",
                len(synced),
                len(deleted),
            )
        return ReconcileResult(tuple(synced), tuple(deleted))

    # -- ScheduleService --------------------------------------------------------------

    async def list(self) -> list[schedule_pb2.Schedule]:
        """The schedules of every workflow that declares one and has it in Temporal."""
        workflows = await every_page(
            lambda token: self._db.workflows.list(page_size=1000, page_token=token)
        )
        found: list[schedule_pb2.Schedule] = []
        for definition in sorted(workflows, key=lambda w: w.name):
            spec = workflow_schedule(definition)
            if spec is None:
                if event_trigger(definition) is not None:
                    found.append(await self._describe_on(definition))
                continue
            try:
                found.append(await self._describe(definition.name, spec))
            except NotFoundError:
                continue
        return found

    async def get(self, workflow: str) -> schedule_pb2.Schedule:
        """The schedule of ``workflow``.

        Raises:
            InvalidArgumentError: The name is malformed.
            store.NotFoundError: No such workflow.
            NotFoundError: The workflow has no schedule (in its document or in Temporal).
        """
        _check_name(workflow)
        definition = await self._db.workflows.get(workflow)
        spec = workflow_schedule(definition)
        if spec is None:
            if event_trigger(definition) is not None:
                return await self._describe_on(definition)
            raise NotFoundError("schedule of workflow", definition.name)
        return await self._describe(definition.name, spec)

    async def pause(self, workflow: str, reason: str) -> schedule_pb2.Schedule:
        """Pause the schedule (idempotent); the note names the caller and the reason."""
        return await self._set_paused(workflow, reason, paused=True)

    async def resume(self, workflow: str, reason: str) -> schedule_pb2.Schedule:
        """Resume a paused schedule (idempotent)."""
        return await self._set_paused(workflow, reason, paused=False)

    async def delete(self, workflow: str) -> None:
        """Delete the schedule (the workflow's document still declares it; see the proto).

        Raises:
            NotFoundError: There is no such schedule.
        """
        _check_name(workflow)
        if not await self.remove(workflow):
            raise NotFoundError("schedule of workflow", workflow)
        logger.info(
            "schedule of workflow %s deleted by %s", quote(workflow), describe(current_actor())
        )

    async def _set_paused(
        self, workflow: str, reason: str, *, paused: bool
    ) -> schedule_pb2.Schedule:
        _check_name(workflow)
        if len(reason) > MAX_REASON_CHARS:
            raise InvalidArgumentError(
                "reason", f"is {len(reason)} characters; the limit is {MAX_REASON_CHARS}"
            )
        verb = "paused" if paused else "resumed"
        note = f"{verb} by {describe(current_actor())}" + (f": {reason}" if reason else "")
        definition = await self._db.workflows.get(workflow)
        if workflow_schedule(definition) is None and event_trigger(definition) is not None:
            # `schedule.on`: the event follower skips a paused workflow's events.
            state = json.dumps({"paused": paused, "note": note}).encode()
            await self._db.cursors.put(_pause_cursor(definition), state)
            logger.info("schedule.on of workflow %s %s", quote(workflow), note)
            return await self.get(workflow)
        handle = self._temporal.get_schedule_handle(self._handle_id(workflow))
        with _temporal_errors(workflow, "pause" if paused else "resume"):
            if paused:
                await handle.pause(note=note)
            else:
                await handle.unpause(note=note)
        logger.info("schedule of workflow %s %s", quote(workflow), note)
        return await self.get(workflow)

    async def _describe(self, workflow: str, spec: WorkflowSchedule) -> schedule_pb2.Schedule:
        handle_id = self._handle_id(workflow)
        with _temporal_errors(workflow, "describe"):
            description = await self._temporal.get_schedule_handle(handle_id).describe()
        return schedule_message(workflow, spec, description)

    async def _describe_on(self, definition: workflow_pb2.Workflow) -> schedule_pb2.Schedule:
        strategy = event_trigger(definition) or {}
        paused, note = await event_schedule_pause(self._db, definition)
        return schedule_pb2.Schedule(
            workflow=definition.name,
            spec=describe_trigger(strategy),
            paused=paused,
            note=note,
            create_time=definition.create_time,
            update_time=definition.update_time,
        )


def describe_trigger(strategy: Mapping[str, Any]) -> str:
    """A `schedule.on` for people: ``on one event``, ``on all of 2 events``, ``on any event``."""
    if "one" in strategy:
        return "on one event"
    kind = "all" if "all" in strategy else "any"
    filters = strategy.get(kind) or []
    if not filters:
        return "on any event"
    return f"on {kind} of {len(filters)} events"


def schedule_message(
    workflow: str, spec: WorkflowSchedule, description: ScheduleDescription
) -> schedule_pb2.Schedule:
    """The API's Schedule from Temporal's description."""
    info = description.info
    state = description.schedule.state
    message = schedule_pb2.Schedule(
        workflow=workflow,
        schedule_id=description.id,
        spec=spec.describe(),
        paused=state.paused,
        note=state.note or "",
        action_count=info.num_actions,
        create_time=_timestamp(info.created_at),
    )
    if info.last_updated_at is not None:
        message.update_time.CopyFrom(_timestamp(info.last_updated_at))
    for at in info.next_action_times[:_SHOWN]:
        message.next_action_times.append(_timestamp(at))
    for result in list(info.recent_actions)[-_SHOWN:]:
        action = message.recent_actions.add(
            scheduled_time=_timestamp(result.scheduled_at),
            actual_time=_timestamp(result.started_at),
        )
        if isinstance(result.action, ScheduleActionExecutionStartWorkflow):
            action.start_workflow_id = result.action.workflow_id
    return message


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _check_name(workflow: str) -> None:
    if not workflow:
        raise InvalidArgumentError("workflow", "must not be empty")
    if not AGENT_NAME.match(workflow):
        raise InvalidArgumentError(
            "workflow",
            f"{quote(workflow)} is not a workflow name (1-63 lowercase letters, "
            "digits or '-', starting with a letter)",
        )


class ScheduleActivities:
    """The local activity of ScheduledWorkflowStart, next to the store."""

    def __init__(self, executions: WorkflowExecutions) -> None:
        self._executions = executions

    @activity.defn(name=START_SCHEDULED_EXECUTION)
    async def start_scheduled_execution(self, workflow: str, request_id: str) -> str:
        """Create one execution of ``workflow`` as its schedule; its ID.

        The same ``request_id`` (the ScheduledWorkflowStart's workflow ID) returns the
        execution created the first time.

        Raises:
            ApplicationError: ``ScheduledWorkflowGone`` (not retried) when the workflow no
                longer exists.
        """
        request = workflow_execution_pb2.CreateWorkflowExecutionRequest(
            execution=workflow_execution_pb2.WorkflowExecution(
                workflow=workflow, labels={contract.SCHEDULE_LABEL: workflow}
            ),
            request_id=request_id,
        )
        with calling_as(schedule_caller(workflow)):
            try:
                execution = await self._executions.create(request)
            except store.NotFoundError as err:
                raise ApplicationError(
                    f"workflow {quote(workflow)} no longer exists", type=WORKFLOW_GONE
                ) from err
        logger.info(
            "schedule of workflow %s created %s",
            quote(workflow),
            execution.id,
            extra={"execution_id": execution.id},
        )
        return execution.id
