"""Merging reports into a status: deltas, upserts and the lifecycle."""

from __future__ import annotations

import pytest

from orchestrator.status import (
    IllegalTransitionError,
    can_transition,
    merge_agent_update,
    merge_workflow_update,
)
from polyfleet.contract import phase_name
from polyfleet.v1 import agent_execution_pb2, common_pb2, workflow_execution_pb2

P = common_pb2


def _execution(phase: int = P.EXECUTION_PHASE_PENDING) -> agent_execution_pb2.AgentExecution:
    execution = agent_execution_pb2.AgentExecution(id="aex-1")
    execution.status.phase = phase  # type: ignore[assignment]
    return execution


def test_running_sets_start_time_and_terminal_sets_end_time() -> None:
    execution = _execution()
    merge_agent_update(execution, P.ExecutionUpdate(phase=P.EXECUTION_PHASE_RUNNING))
    assert execution.status.HasField("start_time")
    assert not execution.status.HasField("end_time")
    merge_agent_update(execution, P.ExecutionUpdate(phase=P.EXECUTION_PHASE_COMPLETED))
    assert execution.status.HasField("end_time")


def test_messages_are_upserted_by_id_and_appended_without_id() -> None:
    execution = _execution(P.EXECUTION_PHASE_RUNNING)
    first = P.Message(id="m1", content="draft")
    merge_agent_update(execution, P.ExecutionUpdate(messages=[first]))
    merge_agent_update(
        execution, P.ExecutionUpdate(messages=[P.Message(id="m1", content="final"), P.Message()])
    )
    assert [m.content for m in execution.status.messages] == ["final", ""]


def test_a_report_never_erases_other_fields() -> None:
    execution = _execution(P.EXECUTION_PHASE_RUNNING)
    merge_agent_update(
        execution,
        P.ExecutionUpdate(output_text="answer", usage=P.Usage(input_tokens=2, total_tokens=2)),
    )
    merge_agent_update(execution, P.ExecutionUpdate(usage=P.Usage(output_tokens=3, total_tokens=3)))
    merge_agent_update(execution, P.ExecutionUpdate(phase=P.EXECUTION_PHASE_COMPLETED))
    assert execution.status.output_text == "answer"
    assert (execution.status.usage.input_tokens, execution.status.usage.output_tokens) == (2, 3)
    assert execution.status.usage.total_tokens == 5


@pytest.mark.parametrize(
    "terminal",
    [P.EXECUTION_PHASE_COMPLETED, P.EXECUTION_PHASE_FAILED, P.EXECUTION_PHASE_CANCELLED],
)
def test_terminal_phases_never_change(terminal: int) -> None:
    execution = _execution(terminal)
    before = execution.SerializeToString()
    with pytest.raises(IllegalTransitionError):
        merge_agent_update(execution, P.ExecutionUpdate(phase=P.EXECUTION_PHASE_RUNNING))
    with pytest.raises(IllegalTransitionError, match="already"):
        merge_agent_update(execution, P.ExecutionUpdate(messages=[P.Message(content="late")]))
    assert execution.SerializeToString() == before


def test_running_cannot_go_back_to_pending() -> None:
    assert not can_transition(P.EXECUTION_PHASE_RUNNING, P.EXECUTION_PHASE_PENDING)
    assert can_transition(P.EXECUTION_PHASE_PENDING, P.EXECUTION_PHASE_FAILED)
    with pytest.raises(IllegalTransitionError, match="RUNNING -> PENDING"):
        merge_agent_update(
            _execution(P.EXECUTION_PHASE_RUNNING),
            P.ExecutionUpdate(phase=P.EXECUTION_PHASE_PENDING),
        )


def test_phase_name() -> None:
    assert phase_name(P.EXECUTION_PHASE_CANCELLED) == "CANCELLED"


@pytest.mark.parametrize(
    "terminal",
    [P.EXECUTION_PHASE_CANCELLED, P.EXECUTION_PHASE_FAILED, P.EXECUTION_PHASE_COMPLETED],
)
def test_terminal_phase_closes_open_tool_calls_and_sub_agents(terminal: int) -> None:
    execution = _execution(P.EXECUTION_PHASE_RUNNING)
    merge_agent_update(
        execution,
        P.ExecutionUpdate(
            tool_calls=[
                P.ToolCall(id="done", status=P.TOOL_CALL_STATUS_SUCCEEDED, result="ok"),
                P.ToolCall(id="slow", status=P.TOOL_CALL_STATUS_RUNNING),
            ],
            sub_agent_executions=[
                P.SubAgentExecution(id="sub", phase=P.EXECUTION_PHASE_RUNNING),
                P.SubAgentExecution(id="sub-done", phase=P.EXECUTION_PHASE_COMPLETED),
            ],
        ),
    )
    update = P.ExecutionUpdate(phase=terminal)  # type: ignore[arg-type]

    merge_agent_update(execution, update)

    status = execution.status
    calls = {call.id: call for call in status.tool_calls}
    assert calls["slow"].status == P.TOOL_CALL_STATUS_CANCELLED
    assert calls["slow"].end_time == status.end_time == status.transitions[-1].time
    assert phase_name(terminal) in calls["slow"].error
    assert (calls["done"].status, calls["done"].HasField("end_time")) == (
        P.TOOL_CALL_STATUS_SUCCEEDED,
        False,
    )
    runs = {run.id: run for run in status.sub_agent_executions}
    assert runs["sub"].phase == P.EXECUTION_PHASE_CANCELLED
    assert runs["sub"].end_time == status.end_time
    assert runs["sub-done"].phase == P.EXECUTION_PHASE_COMPLETED
    # The report is extended with what it closed, so its event tells watchers too.
    assert [call.id for call in update.tool_calls] == ["slow"]
    assert [run.id for run in update.sub_agent_executions] == ["sub"]


def test_a_tool_call_finished_in_the_terminal_report_itself_stays_finished() -> None:
    execution = _execution(P.EXECUTION_PHASE_RUNNING)
    merge_agent_update(
        execution,
        P.ExecutionUpdate(tool_calls=[P.ToolCall(id="c", status=P.TOOL_CALL_STATUS_RUNNING)]),
    )
    merge_agent_update(
        execution,
        P.ExecutionUpdate(
            phase=P.EXECUTION_PHASE_COMPLETED,
            tool_calls=[P.ToolCall(id="c", status=P.TOOL_CALL_STATUS_SUCCEEDED)],
        ),
    )
    assert execution.status.tool_calls[0].status == P.TOOL_CALL_STATUS_SUCCEEDED


def test_terminal_phase_closes_open_workflow_tasks() -> None:
    execution = workflow_execution_pb2.WorkflowExecution(id="wex-1")
    execution.status.phase = P.EXECUTION_PHASE_PENDING
    merge_workflow_update(execution, P.ExecutionUpdate(phase=P.EXECUTION_PHASE_RUNNING))
    merge_workflow_update(
        execution,
        P.ExecutionUpdate(
            tasks=[
                P.TaskStatus(id="/do/0/a", phase=P.TASK_PHASE_COMPLETED),
                P.TaskStatus(id="/do/1/b", phase=P.TASK_PHASE_RUNNING),
                P.TaskStatus(id="/do/2/c", phase=P.TASK_PHASE_PENDING),
            ]
        ),
    )

    merge_workflow_update(execution, P.ExecutionUpdate(phase=P.EXECUTION_PHASE_CANCELLED))

    phases = {task.id: task.phase for task in execution.status.tasks}
    assert phases == {
        "/do/0/a": P.TASK_PHASE_COMPLETED,
        "/do/1/b": P.TASK_PHASE_CANCELLED,
        "/do/2/c": P.TASK_PHASE_CANCELLED,
    }
    assert execution.status.tasks[1].end_time == execution.status.end_time


@pytest.mark.parametrize("answer_first", [False, True])
def test_the_answer_is_stored_once_in_output_text(answer_first: bool) -> None:
    execution = _execution(P.EXECUTION_PHASE_RUNNING)
    answer = "the answer " * 1000
    earlier = P.Message(id="aex-1/assistant-1", role=P.MESSAGE_ROLE_ASSISTANT, content="let me see")
    final = P.Message(id="aex-1/assistant-2", role=P.MESSAGE_ROLE_ASSISTANT, content=answer)
    reports = [P.ExecutionUpdate(messages=[earlier, final]), P.ExecutionUpdate(output_text=answer)]
    for update in reversed(reports) if answer_first else reports:
        merge_agent_update(execution, update)

    status = execution.status
    assert status.output_text == answer
    assert [(m.id, m.content) for m in status.messages] == [
        ("aex-1/assistant-1", "let me see"),
        ("aex-1/assistant-2", ""),
    ], "the final message keeps its identity; its body lives in output_text"
    assert status.ByteSize() < 2 * len(answer)


def test_a_phase_transition_records_its_actor_and_a_merge_without_one_records_none() -> None:
    alice = P.Actor(subject="alice", role="operator", via="token")
    orchestrator = P.Actor(subject="polyfleet-orchestrator", via="system")
    execution = _execution()
    merge_agent_update(
        execution, P.ExecutionUpdate(phase=P.EXECUTION_PHASE_RUNNING), "runner", alice
    )
    merge_agent_update(execution, P.ExecutionUpdate(messages=[P.Message(id="m")]), "runner", alice)
    merge_agent_update(
        execution,
        P.ExecutionUpdate(phase=P.EXECUTION_PHASE_COMPLETED),
        "orchestrator",
        orchestrator,
    )
    assert [(t.source, t.actor) for t in execution.status.transitions] == [
        ("runner", alice),
        ("orchestrator", orchestrator),
    ]
    workflow = workflow_execution_pb2.WorkflowExecution(id="wex-1")
    workflow.status.phase = P.EXECUTION_PHASE_PENDING
    merge_workflow_update(workflow, P.ExecutionUpdate(phase=P.EXECUTION_PHASE_CANCELLED), "api")
    (cancelled,) = workflow.status.transitions
    assert not cancelled.HasField("actor")
