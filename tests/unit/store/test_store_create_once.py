"""Idempotent execution creation: one execution per request key, conflicts, durability."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from polyfleet.v1 import agent_execution_pb2, common_pb2, workflow_execution_pb2
from store import (
    AlreadyExistsError,
    InvalidArgumentError,
    RequestKeyConflictError,
    Store,
    StoreError,
)

PENDING = common_pb2.EXECUTION_PHASE_PENDING
RUNNING = common_pb2.EXECUTION_PHASE_RUNNING
AgentExecution = agent_execution_pb2.AgentExecution
WorkflowExecution = workflow_execution_pb2.WorkflowExecution


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as opened:
        yield opened


def execution(agent: str = "a", message: str = "hi") -> AgentExecution:
    return AgentExecution(
        agent=agent,
        message=message,
        status=agent_execution_pb2.AgentExecutionStatus(phase=PENDING),
    )


async def all_ids(db: Store) -> list[str]:
    page, token = await db.agent_executions.list(page_size=1000)
    assert token == ""
    return [e.id for e in page]


async def test_the_first_call_creates_and_retries_return_it(db: Store) -> None:
    request = execution()

    created, was_created = await db.agent_executions.create_once(request, "req-1", b"fp")
    again, created_again = await db.agent_executions.create_once(execution(), "req-1", b"fp")

    assert was_created and not created_again
    assert created.id.startswith("aex-")
    assert (created.version, created.agent, created.status.phase) == (1, "a", PENDING)
    assert created.create_time.ToNanoseconds() > 0
    assert again == created
    assert request.id == "" and request.version == 0, "the caller's message is not modified"
    assert await db.agent_executions.get(created.id) == created
    assert await all_ids(db) == [created.id]


async def test_a_retry_returns_the_execution_as_currently_stored(db: Store) -> None:
    created, _ = await db.agent_executions.create_once(execution(), "req", b"fp")

    def start(e: AgentExecution) -> None:
        e.status.phase = RUNNING

    updated = await db.agent_executions.update(created.id, start)
    again, was_created = await db.agent_executions.create_once(execution(), "req", b"fp")

    assert not was_created
    assert again == updated
    assert again.version == 2


async def test_fifty_concurrent_callers_create_one_execution(db: Store) -> None:
    results = await asyncio.gather(
        *(db.agent_executions.create_once(execution(), "same", b"fp") for _ in range(50))
    )

    ids = {stored.id for stored, _ in results}
    assert len(ids) == 1
    assert sum(created for _, created in results) == 1
    assert await all_ids(db) == list(ids)


async def test_concurrent_callers_in_several_threads_create_one_execution(db: Store) -> None:
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    async def call_from_this_thread() -> None:
        outcomes = await asyncio.gather(
            *(db.agent_executions.create_once(execution(), "threads", b"fp") for _ in range(10))
        )
        with lock:
            results.extend((stored.id, created) for stored, created in outcomes)

    def run() -> None:
        try:
            asyncio.run(call_from_this_thread())
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(5)]
    for thread in threads:
        thread.start()

    def join_all() -> None:
        for thread in threads:
            thread.join(30)

    await asyncio.to_thread(join_all)

    assert errors == []
    assert len(results) == 50
    assert len({execution_id for execution_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert await all_ids(db) == [results[0][0]]


async def test_another_fingerprint_conflicts_and_names_the_execution(db: Store) -> None:
    created, _ = await db.agent_executions.create_once(execution(message="one"), "req", b"fp-1")

    with pytest.raises(RequestKeyConflictError) as caught:
        await db.agent_executions.create_once(execution(message="two"), "req", b"fp-2")

    assert isinstance(caught.value, StoreError)
    assert (caught.value.request_key, caught.value.execution_id) == ("req", created.id)
    assert caught.value.kind == "agent execution"
    assert "'req'" in str(caught.value) and created.id in str(caught.value)
    assert await all_ids(db) == [created.id], "a conflict writes nothing"
    # The original request is still idempotent.
    again, was_created = await db.agent_executions.create_once(execution(), "req", b"fp-1")
    assert (again.id, was_created) == (created.id, False)


async def test_an_empty_fingerprint_differs_from_a_set_one(db: Store) -> None:
    await db.agent_executions.create_once(execution(), "req", b"")

    assert (await db.agent_executions.create_once(execution(), "req", b""))[1] is False
    with pytest.raises(RequestKeyConflictError):
        await db.agent_executions.create_once(execution(), "req", b"\x00")


async def test_request_keys_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Store.open(path) as db:
        created, _ = await db.agent_executions.create_once(execution(), "durable", b"fp")

    with Store.open(path) as reopened:
        again, was_created = await reopened.agent_executions.create_once(
            execution(), "durable", b"fp"
        )
        with pytest.raises(RequestKeyConflictError) as caught:
            await reopened.agent_executions.create_once(execution(), "durable", b"other")

        assert (again, was_created) == (created, False)
        assert caught.value.execution_id == created.id
        assert await all_ids(reopened) == [created.id]


async def test_different_keys_create_different_executions(db: Store) -> None:
    results = await asyncio.gather(
        *(db.agent_executions.create_once(execution(), f"key-{i}", b"fp") for i in range(20))
    )

    assert all(created for _, created in results)
    assert len({stored.id for stored, _ in results}) == 20
    assert len(await all_ids(db)) == 20


async def test_keys_belong_to_one_repository(db: Store) -> None:
    agent_execution, agent_created = await db.agent_executions.create_once(
        execution(), "shared", b"agent"
    )
    workflow_execution, workflow_created = await db.workflow_executions.create_once(
        WorkflowExecution(workflow="w"), "shared", b"workflow"
    )

    assert agent_created and workflow_created
    assert agent_execution.id.startswith("aex-")
    assert workflow_execution.id.startswith("wex-")
    again, was_created = await db.workflow_executions.create_once(
        WorkflowExecution(workflow="w"), "shared", b"workflow"
    )
    assert (again.id, was_created) == (workflow_execution.id, False)
    with pytest.raises(RequestKeyConflictError) as caught:
        await db.workflow_executions.create_once(WorkflowExecution(), "shared", b"agent")
    assert caught.value.kind == "workflow execution"


async def test_request_key_length(db: Store) -> None:
    longest = "k" * 256

    created, was_created = await db.agent_executions.create_once(execution(), longest, b"fp")
    again, _ = await db.agent_executions.create_once(execution(), longest, b"fp")

    assert was_created and again.id == created.id
    with pytest.raises(InvalidArgumentError) as too_long:
        await db.agent_executions.create_once(execution(), "k" * 257, b"fp")
    with pytest.raises(InvalidArgumentError) as multibyte:
        await db.agent_executions.create_once(execution(), "é" * 129, b"fp")
    with pytest.raises(InvalidArgumentError) as empty:
        await db.agent_executions.create_once(execution(), "", b"fp")
    assert too_long.value.field == multibyte.value.field == empty.value.field == "request_key"
    assert await all_ids(db) == [created.id]


async def test_keys_are_exact_bytes(db: Store) -> None:
    results = [
        await db.agent_executions.create_once(execution(), key, b"fp")
        for key in ["a", "a\x00", "A", "a ", "\x00a"]
    ]

    assert all(created for _, created in results)
    assert len({stored.id for stored, _ in results}) == 5


async def test_a_preset_id_is_kept_and_a_taken_one_records_nothing(db: Store) -> None:
    preset = execution()
    preset.id = "aex-preset"

    created, _ = await db.agent_executions.create_once(preset, "first", b"fp")
    with pytest.raises(AlreadyExistsError):
        await db.agent_executions.create_once(preset, "second", b"fp")
    other = execution()
    retried, was_created = await db.agent_executions.create_once(other, "second", b"fp")

    assert created.id == "aex-preset"
    assert was_created and retried.id != "aex-preset", "the failed call recorded no key"
