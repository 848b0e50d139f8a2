"""Merging reports into a status: deltas, upserts and the lifecycle."""

from __future__ import annotations

import pytest

from orchestrator.status import (
    IllegalTransitionError,
    can_transition,
    merge_agent_update,
    phase_name,
)
from polyfleet.v1 import agent_execution_pb2, common_pb2

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
