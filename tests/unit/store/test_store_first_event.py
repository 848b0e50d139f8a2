"""An execution and event 1 of its log are one commit, with or without a request key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from polyfleet.v1 import agent_execution_pb2, common_pb2
from store import FirstEvent, NotFoundError, Store

PENDING = common_pb2.EXECUTION_PHASE_PENDING
AgentExecution = agent_execution_pb2.AgentExecution
ExecutionUpdate = common_pb2.ExecutionUpdate


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as opened:
        yield opened


def execution() -> AgentExecution:
    return AgentExecution(
        agent="a", message="hi", status=agent_execution_pb2.AgentExecutionStatus(phase=PENDING)
    )


def merge(execution: AgentExecution, update: ExecutionUpdate) -> None:
    execution.status.messages.extend(update.messages)


def first_event(
    merge_fn: Callable[[AgentExecution, ExecutionUpdate], None] = merge,
) -> FirstEvent[AgentExecution]:
    user = common_pb2.Message(id="user", role=common_pb2.MESSAGE_ROLE_USER, content="hi")
    return FirstEvent(
        update=ExecutionUpdate(phase=PENDING, messages=[user], reason="created"),
        merge=merge_fn,
        source="api",
        report_id="created",
    )


class SimulatedCrashError(Exception):
    """A failure inside the create transaction, after the execution was inserted."""


def failing_merge(execution: AgentExecution, update: ExecutionUpdate) -> None:
    raise SimulatedCrashError


async def test_create_writes_the_execution_and_event_1_together(db: Store) -> None:
    created = await db.agent_executions.create(execution(), first_event())

    events = await db.agent_executions.events(created.id)
    assert [(e.sequence, e.source, e.report_id) for e in events] == [(1, "api", "created")]
    assert events[0].update.messages[0].content == "hi"
    assert created.status.last_sequence == 1
    assert [m.content for m in created.status.messages] == ["hi"]
    assert await db.agent_executions.get(created.id) == created


async def test_create_once_writes_the_execution_key_and_event_1_together(db: Store) -> None:
    created, was_created = await db.agent_executions.create_once(
        execution(), "req-1", b"fp", first_event()
    )
    again, created_again = await db.agent_executions.create_once(
        execution(), "req-1", b"fp", first_event()
    )

    assert was_created and not created_again
    assert again == created, "a retry returns the original, with its first event merged"
    assert again.status.last_sequence == 1
    events = await db.agent_executions.events(again.id)
    assert [e.sequence for e in events] == [1]
    assert events[0].update.messages[0].content == "hi"


async def test_a_retried_report_of_event_1_is_not_applied_again(db: Store) -> None:
    created = await db.agent_executions.create(execution(), first_event())

    _, event, applied = await db.agent_executions.apply_report(
        created.id, "created", "api", first_event().update, merge
    )

    assert not applied and event.sequence == 1
    assert len((await db.agent_executions.get(created.id)).status.messages) == 1


async def test_a_failure_inside_create_leaves_neither_execution_nor_event(db: Store) -> None:
    request = execution()
    request.id = "aex-fixed"

    with pytest.raises(SimulatedCrashError):
        await db.agent_executions.create(request, first_event(failing_merge))

    with pytest.raises(NotFoundError):
        await db.agent_executions.get("aex-fixed")
    assert await db.agent_executions.events("aex-fixed") == []
    page, _ = await db.agent_executions.list()
    assert page == [], "no index entry either"


async def test_a_failure_inside_create_once_records_no_request_key(db: Store) -> None:
    request = execution()
    request.id = "aex-fixed"

    with pytest.raises(SimulatedCrashError):
        await db.agent_executions.create_once(request, "req-1", b"fp", first_event(failing_merge))

    with pytest.raises(NotFoundError):
        await db.agent_executions.get("aex-fixed")
    assert await db.agent_executions.events("aex-fixed") == []
    retried, created = await db.agent_executions.create_once(request, "req-1", b"fp", first_event())
    assert created, "the key was not recorded by the failed attempt"
    assert retried.id == "aex-fixed"
    assert [e.sequence for e in await db.agent_executions.events(retried.id)] == [1]
