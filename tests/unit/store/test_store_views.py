"""Execution views (BASIC trims what grows with the work) and List's byte budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import struct_pb2

from polyfleet.v1 import agent_execution_pb2, common_pb2, workflow_execution_pb2
from store import Store, apply_view
from store.views import store_answer_once

AgentExecution = agent_execution_pb2.AgentExecution
WorkflowExecution = workflow_execution_pb2.WorkflowExecution
BASIC = common_pb2.EXECUTION_VIEW_BASIC
FULL = common_pb2.EXECUTION_VIEW_FULL
MIB = 1024 * 1024


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as opened:
        yield opened


def big_agent_execution(answer_bytes: int = 1000) -> AgentExecution:
    arguments = struct_pb2.Struct()
    arguments.update({"q": "weather"})
    execution = AgentExecution(agent="a", message="hi", labels={"team": "x"})
    status = execution.status
    status.phase = common_pb2.EXECUTION_PHASE_COMPLETED
    status.messages.add(id="m1", role=common_pb2.MESSAGE_ROLE_USER, content="hi")
    status.messages.add(id="m2", role=common_pb2.MESSAGE_ROLE_TOOL, content="sunny")
    status.tool_calls.add(id="t1", name="weather", arguments=arguments, result="sunny")
    status.sub_agent_executions.add(id="s1", name="helper", input="in", output="out")
    status.output_text = "a" * answer_bytes
    status.output.update({"answer": "yes"})
    status.usage.total_tokens = 7
    status.error.type = "None"
    return execution


def test_basic_keeps_the_shape_and_drops_bodies_of_an_agent_execution() -> None:
    trimmed = apply_view(big_agent_execution(), BASIC)

    status = trimmed.status
    assert (trimmed.agent, trimmed.message, dict(trimmed.labels)) == ("a", "hi", {"team": "x"})
    assert status.phase == common_pb2.EXECUTION_PHASE_COMPLETED
    assert [(m.id, m.role, m.content) for m in status.messages] == [
        ("m1", common_pb2.MESSAGE_ROLE_USER, ""),
        ("m2", common_pb2.MESSAGE_ROLE_TOOL, ""),
    ]
    call = status.tool_calls[0]
    assert (call.id, call.name, call.result, call.HasField("arguments")) == (
        "t1",
        "weather",
        "",
        False,
    )
    run = status.sub_agent_executions[0]
    assert (run.name, run.input, run.output) == ("helper", "", "")
    assert status.output_text == "" and not status.HasField("output")
    assert status.usage.total_tokens == 7 and status.error.type == "None"


def test_basic_drops_task_values_outputs_and_document_of_a_workflow_execution() -> None:
    execution = WorkflowExecution(workflow="w", document="document: {}")
    execution.input.update({"order": 1})
    execution.status.messages.add(id="m", content="note")
    task = execution.status.tasks.add(id="/do/0/a", name="a", phase=common_pb2.TASK_PHASE_COMPLETED)
    task.input.string_value = "in"
    task.output.string_value = "x" * 1000
    execution.status.output.string_value = "done"

    trimmed = apply_view(execution, BASIC)

    assert trimmed.document == "" and trimmed.input["order"] == 1
    assert trimmed.status.messages[0].content == ""
    kept = trimmed.status.tasks[0]
    assert (kept.id, kept.name, kept.phase) == ("/do/0/a", "a", common_pb2.TASK_PHASE_COMPLETED)
    assert not kept.HasField("input") and not kept.HasField("output")
    assert not trimmed.status.HasField("output")


@pytest.mark.parametrize("view", [FULL, common_pb2.EXECUTION_VIEW_UNSPECIFIED])
def test_full_changes_nothing(view: common_pb2.ExecutionView.ValueType) -> None:
    assert apply_view(big_agent_execution(), view) == big_agent_execution()


async def test_get_and_list_return_the_requested_view(db: Store) -> None:
    created = await db.agent_executions.create(big_agent_execution())

    assert await db.agent_executions.get(created.id) == created
    basic = await db.agent_executions.get(created.id, BASIC)
    assert basic.status.output_text == "" and basic.status.messages[0].id == "m1"
    page, _ = await db.agent_executions.list(view=BASIC)
    assert page == [basic]
    stored = await db.agent_executions.get(created.id)
    assert stored.status.output_text == created.status.output_text, "reads never trim the store"


async def test_a_page_ends_before_the_byte_budget_and_resumes_after(db: Store) -> None:
    created = [await db.agent_executions.create(big_agent_execution(MIB)) for _ in range(5)]
    newest_first = [e.id for e in reversed(created)]

    first, token = await db.agent_executions.list(page_size=50, max_bytes=int(2.5 * MIB))
    assert [e.id for e in first] == newest_first[:2], "two 1 MiB executions fit in 2.5 MiB"
    assert token
    seen = [e.id for e in first]
    while token:
        page, token = await db.agent_executions.list(
            page_size=50, page_token=token, max_bytes=int(2.5 * MIB)
        )
        assert 1 <= len(page) <= 2
        seen += [e.id for e in page]
    assert seen == newest_first, "nothing skipped, nothing repeated"


async def test_a_single_execution_over_the_budget_still_gets_its_own_page(db: Store) -> None:
    big = await db.agent_executions.create(big_agent_execution(2 * MIB))
    small = await db.agent_executions.create(big_agent_execution(10))

    first, token = await db.agent_executions.list(max_bytes=MIB)
    second, last = await db.agent_executions.list(page_token=token, max_bytes=MIB)

    assert [e.id for e in first] == [small.id]
    assert [e.id for e in second] == [big.id] and last == ""


async def test_the_budget_counts_the_view_not_the_stored_size(db: Store) -> None:
    for _ in range(5):
        await db.agent_executions.create(big_agent_execution(MIB))

    page, token = await db.agent_executions.list(view=BASIC, max_bytes=MIB)

    assert len(page) == 5 and token == ""


def test_the_answer_stored_once_is_shown_again_in_the_full_view() -> None:
    execution = big_agent_execution(answer_bytes=10)
    status = execution.status
    status.messages.add(id="m3", role=common_pb2.MESSAGE_ROLE_ASSISTANT, content="a" * 10)

    store_answer_once(status)
    assert status.messages[-1].content == "", "the store keeps the answer once"
    assert status.output_text == "a" * 10

    full = apply_view(AgentExecution.FromString(execution.SerializeToString()), FULL)
    assert full.status.messages[-1].content == "a" * 10
    basic = apply_view(execution, BASIC)
    assert basic.status.messages[-1].content == "" and basic.status.output_text == ""


def test_a_final_message_that_differs_from_the_output_is_kept() -> None:
    execution = big_agent_execution(answer_bytes=10)
    status = execution.status
    status.messages.add(id="m3", role=common_pb2.MESSAGE_ROLE_ASSISTANT, content="other")

    store_answer_once(status)

    assert status.messages[-1].content == "other"
    assert apply_view(execution, FULL).status.messages[-1].content == "other"


@pytest.mark.parametrize("kind", [AgentExecution, WorkflowExecution])
def test_basic_keeps_who_created_it_and_who_changed_its_phase(
    kind: type[AgentExecution] | type[WorkflowExecution],
) -> None:
    alice = common_pb2.Actor(subject="alice", role="operator", via="token")
    system = common_pb2.Actor(subject="polyfleet-orchestrator", via="system")
    execution = kind(created_by=alice)
    execution.status.transitions.add(
        to_phase=common_pb2.EXECUTION_PHASE_CANCELLED, source="api", actor=alice
    )
    execution.status.transitions.add(to_phase=common_pb2.EXECUTION_PHASE_FAILED, actor=system)
    trimmed = apply_view(execution, BASIC)
    assert trimmed.created_by == alice
    assert [t.actor for t in trimmed.status.transitions] == [alice, system]
