"""Executions stay readable whatever their size: views, byte-bounded pages, an output limit."""

from __future__ import annotations

from polyfleet import contract
from polyfleet.v1 import agent_execution_pb2, agent_pb2, common_pb2
from tests.conftest import Fleet, scripted_agent

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED
FAILED = common_pb2.EXECUTION_PHASE_FAILED
BASIC = common_pb2.EXECUTION_VIEW_BASIC
FULL = common_pb2.EXECUTION_VIEW_FULL
MIB = 1024 * 1024
# The scripted model repeats the user message (at most 100,000 characters) in its reply:
# 32 copies make a ~3 MiB answer from a small agent definition, 50 copies ~4.8 MiB, over
# the default POLYFLEET_MAX_OUTPUT_BYTES of 4 MiB.
MESSAGE = "x" * 100_000


async def _execute(fleet: Fleet, agent: str) -> agent_execution_pb2.AgentExecution:
    return await fleet.executions.ExecuteAgent(
        agent_execution_pb2.ExecuteAgentRequest(
            request=agent_execution_pb2.CreateAgentExecutionRequest(
                execution=agent_execution_pb2.AgentExecution(agent=agent, message=MESSAGE)
            )
        )
    )


def _repeating_agent(name: str, copies: int) -> agent_pb2.Agent:
    agent = scripted_agent(name)
    agent.model.scripted.default_reply = "{message}" * copies
    return agent


async def _list(
    fleet: Fleet, view: common_pb2.ExecutionView.ValueType = common_pb2.EXECUTION_VIEW_UNSPECIFIED
) -> tuple[list[list[str]], list[int]]:
    """Every page of the agent's executions: IDs per page and each response's size."""
    pages: list[list[str]] = []
    sizes: list[int] = []
    token = ""
    while True:
        response = await fleet.executions.ListAgentExecutions(
            agent_execution_pb2.ListAgentExecutionsRequest(agent="big", page_token=token, view=view)
        )
        pages.append([e.id for e in response.executions])
        sizes.append(response.ByteSize())
        token = response.next_page_token
        if not token:
            return pages, sizes


async def test_executions_with_3_mib_answers_stay_listable_and_gettable(fleet: Fleet) -> None:
    await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=_repeating_agent("big", 32)))
    answer = MESSAGE * 32
    executions = [await _execute(fleet, "big") for _ in range(3)]
    assert [e.status.phase for e in executions] == [COMPLETED] * 3
    ids = [e.id for e in reversed(executions)]

    # List defaults to BASIC: one small page, no bodies.
    pages, sizes = await _list(fleet)
    assert pages == [ids] and sizes[0] < 1 * MIB
    # FULL pages end at the byte budget (4 MiB): one execution per page, its answer shown in
    # output_text and in the final message, well under gRPC's 16 MiB.
    full_pages, full_sizes = await _list(fleet, FULL)
    assert full_pages == [[i] for i in ids]
    assert max(full_sizes) < 2 * len(answer) + 1 * MIB

    for execution_id in ids:
        full = await fleet.executions.GetAgentExecution(
            agent_execution_pb2.GetAgentExecutionRequest(id=execution_id)
        )
        status = full.status
        assert status.output_text == answer, "Get defaults to FULL"
        final = [m for m in status.messages if m.role == common_pb2.MESSAGE_ROLE_ASSISTANT]
        assert [m.content for m in final] == [answer], "FULL shows the conversation whole"
        assert full.ByteSize() < 2 * len(answer) + 1 * MIB
        basic = await fleet.executions.GetAgentExecution(
            agent_execution_pb2.GetAgentExecutionRequest(id=execution_id, view=BASIC)
        )
        assert basic.status.output_text == "" and basic.ByteSize() < 200_000


async def test_an_answer_over_the_limit_fails_with_output_too_large(fleet: Fleet) -> None:
    await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=_repeating_agent("huge", 50)))

    failed = await _execute(fleet, "huge")

    assert failed.status.phase == FAILED
    error = failed.status.error
    assert error.type == contract.OUTPUT_TOO_LARGE
    assert "5000000 bytes" in error.message and "the limit is 4194304 bytes" in error.message
    again = await fleet.executions.GetAgentExecution(
        agent_execution_pb2.GetAgentExecutionRequest(id=failed.id)
    )
    assert again.status.error.type == contract.OUTPUT_TOO_LARGE
    assert again.ByteSize() < 1 * MIB, "the oversized answer was never stored in the status"
