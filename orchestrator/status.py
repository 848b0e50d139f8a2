"""Merging progress reports into an execution's status.

Reports are deltas: a report never replaces the status wholesale, so a runner's
message report and the workflow's final UpdateStatus can arrive in any order
without erasing each other.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from google.protobuf.timestamp_pb2 import Timestamp

from polyfleet.contract import TERMINAL_PHASES, is_terminal, phase_name
from polyfleet.usage import add_usage
from polyfleet.v1 import agent_execution_pb2, common_pb2, workflow_execution_pb2
from store.views import store_answer_once

_ALLOWED: dict[int, frozenset[int]] = {
    common_pb2.EXECUTION_PHASE_PENDING: frozenset(
        {common_pb2.EXECUTION_PHASE_RUNNING, *TERMINAL_PHASES}
    ),
    common_pb2.EXECUTION_PHASE_RUNNING: TERMINAL_PHASES,
}

Status = agent_execution_pb2.AgentExecutionStatus | workflow_execution_pb2.WorkflowExecutionStatus


class IllegalTransitionError(Exception):
    """A report asked for a change the execution lifecycle does not allow."""

    def __init__(self, execution_id: str, current: int, requested: int) -> None:
        self.execution_id = execution_id
        self.current = current
        self.requested = requested
        if current == requested:
            detail = f"execution {execution_id} is already {phase_name(current)}"
        else:
            detail = (
                f"execution {execution_id}: illegal phase transition "
                f"{phase_name(current)} -> {phase_name(requested)}"
            )
        super().__init__(detail)


def can_transition(current: int, requested: int) -> bool:
    """Whether the lifecycle allows moving from ``current`` to ``requested``."""
    return requested == current or requested in _ALLOWED.get(current, frozenset())


def merge_agent_update(
    execution: agent_execution_pb2.AgentExecution,
    update: common_pb2.ExecutionUpdate,
    source: str = "",
    actor: common_pb2.Actor | None = None,
) -> None:
    """Merge a progress report into an agent execution's status.

    Args:
        execution: The execution to mutate.
        update: The delta to merge.
        source: Which path sent it ("api", "runner", ...), recorded in phase transitions.
        actor: Who sent it (orchestrator.actors), recorded in phase transitions.

    Raises:
        IllegalTransitionError: The report would change a terminal execution or make
            an illegal phase change; nothing is merged.

    """
    status = execution.status
    ended = _merge_common(execution.id, status, update, source, _actor(execution, update, actor))
    if update.phase and is_terminal(update.phase):
        status.queued_behind = ""
    _upsert(status.tool_calls, update.tool_calls)
    _upsert(status.sub_agent_executions, update.sub_agent_executions)
    if update.HasField("usage"):
        add_usage(status.usage, update.usage)
    if update.output_text:
        status.output_text = update.output_text
    if update.HasField("output"):
        status.output.CopyFrom(update.output)
    store_answer_once(status)
    if ended is not None:
        close_open_items(status, update, ended)


def merge_workflow_update(
    execution: workflow_execution_pb2.WorkflowExecution,
    update: common_pb2.ExecutionUpdate,
    source: str = "",
    actor: common_pb2.Actor | None = None,
) -> None:
    """Merge a progress report into a workflow execution's status.

    Task states are upserted by task ID, so one task's report never erases another's.

    Raises:
        IllegalTransitionError: As for :func:`merge_agent_update`.
    """
    status = execution.status
    ended = _merge_common(execution.id, status, update, source, _actor(execution, update, actor))
    _upsert(status.tasks, update.tasks)
    if update.HasField("workflow_output"):
        status.output.CopyFrom(update.workflow_output)
    if ended is not None:
        close_open_items(status, update, ended)


def _actor(
    execution: agent_execution_pb2.AgentExecution | workflow_execution_pb2.WorkflowExecution,
    update: common_pb2.ExecutionUpdate,
    actor: common_pb2.Actor | None,
) -> common_pb2.Actor | None:
    # A cancellation is the doing of whoever asked for it, though the workflow writes it.
    if update.phase == common_pb2.EXECUTION_PHASE_CANCELLED and execution.HasField(
        "cancel_requested_by"
    ):
        return execution.cancel_requested_by
    return actor


def _merge_common(
    execution_id: str,
    status: Status,
    update: common_pb2.ExecutionUpdate,
    source: str,
    actor: common_pb2.Actor | None,
) -> Timestamp | None:
    # Returns the time of the transition when this update made the execution terminal.
    ended: Timestamp | None = None
    requested = update.phase
    if is_terminal(status.phase) and (
        (requested and requested != status.phase) or _changes_content(update)
    ):
        # A late report after the terminal state would rewrite history; only a bare
        # repeat of the terminal phase is harmless.
        raise IllegalTransitionError(execution_id, status.phase, requested or status.phase)
    if requested and not can_transition(status.phase, requested):
        raise IllegalTransitionError(execution_id, status.phase, requested)
    if requested and requested != status.phase:
        now = Timestamp()
        now.GetCurrentTime()
        status.transitions.add(
            from_phase=status.phase,
            to_phase=requested,
            time=now,
            reason=update.reason or (update.error.message if update.HasField("error") else ""),
            source=source,
            actor=actor,
        )
        status.phase = requested
        if requested == common_pb2.EXECUTION_PHASE_RUNNING:
            status.start_time.CopyFrom(now)
        if is_terminal(requested):
            status.end_time.CopyFrom(now)
            ended = now
    _upsert(status.messages, update.messages)
    if update.HasField("error"):
        status.error.CopyFrom(update.error)
    return ended


_OPEN_TOOL_CALLS = frozenset({common_pb2.TOOL_CALL_STATUS_RUNNING})
_OPEN_PHASES = frozenset({common_pb2.EXECUTION_PHASE_PENDING, common_pb2.EXECUTION_PHASE_RUNNING})
_OPEN_TASKS = frozenset({common_pb2.TASK_PHASE_PENDING, common_pb2.TASK_PHASE_RUNNING})


def close_open_items(status: Status, update: common_pb2.ExecutionUpdate, ended: Timestamp) -> None:
    """Close what was still open when the execution reached its terminal phase.

    Nothing stays RUNNING inside a terminal execution: a tool call, sub-agent run or
    workflow task still RUNNING or PENDING never finished, whatever the execution's
    outcome (even COMPLETED: e.g. a graph that answered without waiting for a call), so
    it becomes CANCELLED with the terminal transition's time as its end time. The
    runner's own report of it, if any, comes too late: the terminal phase is final.

    The closed items are also added to ``update``, so the event that records the
    terminal report carries them and a watcher replaying events sees them close.

    Args:
        status: The status that just became terminal.
        update: The report that made it terminal; extended with the closed items.
        ended: The time of the terminal transition.

    """
    why = f"the execution ended {phase_name(status.phase)} before this finished"
    if isinstance(status, agent_execution_pb2.AgentExecutionStatus):
        for call in status.tool_calls:
            if call.status in _OPEN_TOOL_CALLS:
                call.status = common_pb2.TOOL_CALL_STATUS_CANCELLED
                call.error = call.error or why
                call.end_time.CopyFrom(ended)
                update.tool_calls.add().CopyFrom(call)
        for run in status.sub_agent_executions:
            if run.phase in _OPEN_PHASES:
                run.phase = common_pb2.EXECUTION_PHASE_CANCELLED
                run.end_time.CopyFrom(ended)
                update.sub_agent_executions.add().CopyFrom(run)
    else:
        for task in status.tasks:
            if task.phase in _OPEN_TASKS:
                task.phase = common_pb2.TASK_PHASE_CANCELLED
                task.end_time.CopyFrom(ended)
                update.tasks.add().CopyFrom(task)


def _changes_content(update: common_pb2.ExecutionUpdate) -> bool:
    return bool(
        update.messages
        or update.tool_calls
        or update.HasField("error")
        or update.output_text
        or update.HasField("output")
        or update.HasField("usage")
        or update.content_delta
        or update.sub_agent_executions
        or update.tasks
        or update.HasField("workflow_output")
    )


_Item = TypeVar(
    "_Item",
    common_pb2.Message,
    common_pb2.ToolCall,
    common_pb2.SubAgentExecution,
    common_pb2.TaskStatus,
)


def _upsert(
    target: RepeatedCompositeFieldContainer[_Item], items: RepeatedCompositeFieldContainer[_Item]
) -> None:
    # Items with an ID replace the earlier item with that ID; a retried or refined
    # report (a tool call that finished) updates in place instead of duplicating.
    if not items:
        return  # most reports touch one list: no index of the others' items
    index = {item.id: i for i, item in enumerate(target) if item.id}
    for item in items:
        position = index.get(item.id) if item.id else None
        if position is None:
            target.add().CopyFrom(item)
            if item.id:
                index[item.id] = len(target) - 1
        else:
            target[position].CopyFrom(item)
