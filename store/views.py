"""Views of an execution (AIP-157): how much of a stored execution a read returns.

The one place that decides what ``EXECUTION_VIEW_BASIC`` leaves out, for both kinds of
execution, so Get, List and any other reader trim alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from polyfleet.v1 import agent_execution_pb2, common_pb2, workflow_execution_pb2
from store._resource import Execution

ExecutionView = common_pb2.ExecutionView
BASIC = common_pb2.EXECUTION_VIEW_BASIC
FULL = common_pb2.EXECUTION_VIEW_FULL

V = TypeVar("V", bound=Execution)


def apply_view(execution: V, view: ExecutionView.ValueType) -> V:
    """Trim ``execution`` in place to ``view`` and return it.

    BASIC keeps identity, labels, request fields, who created it (``created_by``), phase,
    times, transitions (with their actors), usage and errors,
    and the shape of the status (every message, tool call, sub-agent run and task, with its
    ID, name, role or type, phase and times) so a client can list and count them. It empties
    what grows with the work: message contents, tool call arguments and results, sub-agent
    inputs and outputs, task inputs and outputs, the outputs (``output_text``, ``output``)
    and a workflow execution's copy of its document. FULL and UNSPECIFIED return everything
    (the caller resolves UNSPECIFIED to the method's default first): the final answer, stored
    once in ``output_text``, is shown again as the content of the final assistant message.

    Args:
        execution: A stored execution, agent or workflow; it is modified.
        view: The view to apply.

    Returns:
        ``execution``, for chaining.

    """
    if view != BASIC:
        if isinstance(execution, agent_execution_pb2.AgentExecution):
            _restore_answer(execution.status)
        return execution
    if isinstance(execution, agent_execution_pb2.AgentExecution):
        _trim_agent(execution.status)
    elif isinstance(execution, workflow_execution_pb2.WorkflowExecution):
        execution.document = ""
        execution.resolved_functions.clear()
        _trim_workflow(execution.status)
    return execution


def store_answer_once(status: agent_execution_pb2.AgentExecutionStatus) -> None:
    """Empty the final assistant message when it repeats ``output_text``, in place.

    The answer is kept once, in ``output_text``: twice, a large answer doubled the stored
    execution. The message keeps its ID, role, name and time; :func:`apply_view` puts the
    content back when a reader asks for the FULL view. Safe to call on every merge, so it
    holds whichever of the message and ``output_text`` is reported first.
    """
    message = _final_answer(status)
    if message is not None and message.content == status.output_text:
        message.content = ""


def _restore_answer(status: agent_execution_pb2.AgentExecutionStatus) -> None:
    message = _final_answer(status)
    if message is not None and not message.content:
        message.content = status.output_text


def _final_answer(status: agent_execution_pb2.AgentExecutionStatus) -> common_pb2.Message | None:
    # The last assistant message, when it is a plain answer (not a request for tool calls).
    if not status.output_text:
        return None
    for message in reversed(status.messages):
        if message.role == common_pb2.MESSAGE_ROLE_ASSISTANT:
            return None if message.tool_calls else message
    return None


def _trim_messages(messages: Iterable[common_pb2.Message]) -> None:
    for message in messages:
        message.content = ""
        for call in message.tool_calls:
            call.ClearField("arguments")


def _trim_agent(status: agent_execution_pb2.AgentExecutionStatus) -> None:
    _trim_messages(status.messages)
    status.output_text = ""
    status.ClearField("output")
    for call in status.tool_calls:
        call.ClearField("arguments")
        call.result = ""
    for run in status.sub_agent_executions:
        run.input = ""
        run.output = ""


def _trim_workflow(status: workflow_execution_pb2.WorkflowExecutionStatus) -> None:
    _trim_messages(status.messages)
    status.ClearField("output")
    for task in status.tasks:
        task.ClearField("input")
        task.ClearField("output")
