"""Execution event logs: sequencing, report deduplication and atomic merges."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from polyfleet.v1 import agent_execution_pb2, common_pb2, workflow_execution_pb2
from store import InvalidArgumentError, NotFoundError, Store

PENDING = common_pb2.EXECUTION_PHASE_PENDING
RUNNING = common_pb2.EXECUTION_PHASE_RUNNING
COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED
AgentExecution = agent_execution_pb2.AgentExecution
Update = common_pb2.ExecutionUpdate


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as opened:
        yield opened


def merge(execution: AgentExecution, update: Update) -> None:
    if update.phase:
        execution.status.phase = update.phase
    execution.status.messages.extend(update.messages)
    if update.output_text:
        execution.status.output_text = update.output_text


async def new_execution(db: Store) -> AgentExecution:
    return await db.agent_executions.create(
        AgentExecution(agent="a", status=agent_execution_pb2.AgentExecutionStatus(phase=PENDING))
    )


def text(content: str) -> Update:
    return Update(messages=[common_pb2.Message(id=content, content=content)])


async def test_reports_are_sequenced_and_merged(db: Store) -> None:
    created = await new_execution(db)

    execution, event, applied = await db.agent_executions.apply_report(
        created.id, "r1", "runner", Update(phase=RUNNING), merge
    )
    await db.agent_executions.apply_report(created.id, "r2", "runner", text("hi"), merge)
    final, last, _ = await db.agent_executions.apply_report(
        created.id, "r3", "orchestrator", Update(phase=COMPLETED, output_text="done"), merge
    )

    assert applied
    assert (event.execution_id, event.sequence, event.report_id) == (created.id, 1, "r1")
    assert (event.source, event.phase) == ("runner", RUNNING)
    assert event.create_time == execution.update_time
    assert (last.sequence, last.phase, last.source) == (3, COMPLETED, "orchestrator")
    assert final.status.last_sequence == 3
    assert final.version == 4
    assert final.status.output_text == "done"
    assert [m.content for m in final.status.messages] == ["hi"]
    assert await db.agent_executions.get(created.id) == final
    events = await db.agent_executions.events(created.id)
    assert [e.sequence for e in events] == [1, 2, 3]
    assert [e.report_id for e in events] == ["r1", "r2", "r3"]
    assert events[1].update == text("hi")


async def test_a_retried_report_is_applied_once(db: Store) -> None:
    created = await new_execution(db)
    _, original, _ = await db.agent_executions.apply_report(
        created.id, "r1", "runner", text("once"), merge
    )
    await db.agent_executions.apply_report(created.id, "r2", "runner", text("next"), merge)

    current, event, applied = await db.agent_executions.apply_report(
        created.id, "r1", "runner", text("once"), merge
    )

    assert not applied
    assert event == original
    assert current == await db.agent_executions.get(created.id)
    assert [m.content for m in current.status.messages] == ["once", "next"]
    assert len(await db.agent_executions.events(created.id)) == 2


async def test_a_report_and_the_write_riding_on_it_commit_as_one(db: Store) -> None:
    created = await new_execution(db)
    thread, _ = await db.threads.get_or_create_for_session("ses-x")
    turn = [common_pb2.Message(id="u", content="hi")]

    async def answer_with_turn() -> bool:
        append = db.threads.appending(thread.id, "r1", turn)
        _, _, applied = await db.agent_executions.apply_report(
            created.id, "r1", "runner", text("answer"), merge, append
        )
        return applied

    assert await answer_with_turn()
    assert [m.content for m in (await db.threads.get(thread.id)).messages] == ["hi"]

    # The write fails (no such thread): the report is not applied either.
    missing = db.threads.appending("thr-missing", "r2", turn)
    with pytest.raises(NotFoundError):
        await db.agent_executions.apply_report(
            created.id, "r2", "runner", text("lost"), merge, missing
        )
    stored = await db.agent_executions.get(created.id)
    assert [m.content for m in stored.status.messages] == ["answer"]
    assert len(await db.agent_executions.events(created.id)) == 1

    # A retried report runs it again; the append's own report ID keeps it once.
    assert not await answer_with_turn()
    assert [m.content for m in (await db.threads.get(thread.id)).messages] == ["hi"]


async def test_concurrent_retries_apply_once(db: Store) -> None:
    created = await new_execution(db)

    results = await asyncio.gather(
        *(
            db.agent_executions.apply_report(created.id, f"r{i % 5}", "runner", text(str(i)), merge)
            for i in range(20)
        )
    )

    assert sum(applied for _, _, applied in results) == 5
    events = await db.agent_executions.events(created.id)
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    assert sorted(e.report_id for e in events) == [f"r{i}" for i in range(5)]


async def test_empty_report_id_is_always_applied(db: Store) -> None:
    created = await new_execution(db)

    for _ in range(3):
        _, _, applied = await db.agent_executions.apply_report(
            created.id, "", "api", text("x"), merge
        )
        assert applied

    assert [e.sequence for e in await db.agent_executions.events(created.id)] == [1, 2, 3]


async def test_reading_after_a_sequence_and_with_a_limit(db: Store) -> None:
    created = await new_execution(db)
    other = await new_execution(db)
    for i in range(10):
        await db.agent_executions.apply_report(created.id, f"r{i}", "runner", text(str(i)), merge)
        await db.agent_executions.apply_report(other.id, f"r{i}", "runner", text(str(i)), merge)

    after = await db.agent_executions.events(created.id, after_sequence=7)
    limited = await db.agent_executions.events(created.id, after_sequence=2, limit=3)

    assert [e.sequence for e in after] == [8, 9, 10]
    assert {e.execution_id for e in after} == {created.id}
    assert [e.sequence for e in limited] == [3, 4, 5]
    assert await db.agent_executions.events(created.id, after_sequence=10) == []
    assert len(await db.agent_executions.events(created.id, limit=0)) == 10
    assert await db.agent_executions.events("aex-unknown") == []
    assert await db.agent_executions.events("") == []


async def test_merge_raising_writes_nothing(db: Store) -> None:
    created = await new_execution(db)
    await db.agent_executions.apply_report(created.id, "r1", "runner", text("a"), merge)
    before = await db.agent_executions.get(created.id)

    def failing(execution: AgentExecution, update: Update) -> None:
        merge(execution, update)
        raise RuntimeError("illegal transition")

    with pytest.raises(RuntimeError, match="illegal transition"):
        await db.agent_executions.apply_report(created.id, "r2", "runner", text("b"), failing)

    assert await db.agent_executions.get(created.id) == before
    assert [e.sequence for e in await db.agent_executions.events(created.id)] == [1]
    # The failed report was not recorded, so a corrected retry is applied.
    _, event, applied = await db.agent_executions.apply_report(
        created.id, "r2", "runner", text("b"), merge
    )
    assert applied and event.sequence == 2


async def test_merge_cannot_corrupt_the_sequence(db: Store) -> None:
    created = await new_execution(db)

    def meddling(execution: AgentExecution, update: Update) -> None:
        execution.status.last_sequence = 99
        execution.id = "aex-other"

    execution, event, _ = await db.agent_executions.apply_report(
        created.id, "r", "runner", Update(), meddling
    )

    assert (execution.id, execution.status.last_sequence, event.sequence) == (created.id, 1, 1)


async def test_update_keeps_the_log_position_and_checks_versions(db: Store) -> None:
    created = await new_execution(db)
    await db.agent_executions.apply_report(created.id, "r", "runner", text("a"), merge)

    def relabel(execution: AgentExecution) -> None:
        execution.labels["k"] = "v"
        execution.status.last_sequence = 0

    updated = await db.agent_executions.update(created.id, relabel, expected_version=2)

    assert updated.status.last_sequence == 1
    assert updated.version == 3
    _, event, _ = await db.agent_executions.apply_report(created.id, "s", "runner", Update(), merge)
    assert event.sequence == 2


async def test_unknown_execution(db: Store) -> None:
    with pytest.raises(NotFoundError) as caught:
        await db.agent_executions.apply_report("aex-none", "r", "runner", Update(), merge)

    assert str(caught.value) == "agent execution 'aex-none' not found"
    with pytest.raises(NotFoundError):
        await db.agent_executions.get("aex-none")
    with pytest.raises(NotFoundError):
        await db.agent_executions.update("aex-none", lambda e: None)


async def test_overlong_report_id_is_rejected(db: Store) -> None:
    created = await new_execution(db)

    with pytest.raises(InvalidArgumentError) as caught:
        await db.agent_executions.apply_report(created.id, "r" * 300, "runner", Update(), merge)

    assert caught.value.field == "report_id"


async def test_workflow_execution_log(db: Store) -> None:
    created = await db.workflow_executions.create(
        workflow_execution_pb2.WorkflowExecution(
            workflow="w", status=workflow_execution_pb2.WorkflowExecutionStatus(phase=PENDING)
        )
    )

    def merge_workflow(execution: workflow_execution_pb2.WorkflowExecution, update: Update) -> None:
        if update.phase:
            execution.status.phase = update.phase

    execution, event, _ = await db.workflow_executions.apply_report(
        created.id, "r1", "runner", Update(phase=RUNNING), merge_workflow
    )

    assert event.phase == RUNNING
    assert execution.status.last_sequence == 1
    running, _ = await db.workflow_executions.list(filters={"phase": int(RUNNING)})
    assert [e.id for e in running] == [created.id]
    assert await db.workflow_executions.events(created.id) == [event]
