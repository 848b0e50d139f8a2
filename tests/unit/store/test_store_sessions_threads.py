"""Sessions and their threads."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from polyfleet.v1 import agent_execution_pb2, common_pb2, session_pb2
from store import AlreadyExistsError, ConflictError, InvalidArgumentError, NotFoundError, Store
from store._engine import Engine
from tests.helpers import held_writer


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as opened:
        yield opened


def message(text: str) -> common_pb2.Message:
    return common_pb2.Message(id=text, role=common_pb2.MESSAGE_ROLE_USER, content=text)


async def test_session_create_get_update(db: Store) -> None:
    session = await db.sessions.create(session_pb2.Session(agent="helper"))

    assert session.id.startswith("ses-")
    assert session.version == 1
    assert await db.sessions.get(session.id) == session

    def label(s: session_pb2.Session) -> None:
        s.labels["k"] = "v"
        s.id = "ses-hijacked"  # identity is not the mutator's to change

    updated = await db.sessions.update(session.id, label)

    assert updated.id == session.id
    assert updated.version == 2
    assert dict(updated.labels) == {"k": "v"}
    assert updated.create_time == session.create_time
    assert await db.sessions.get(session.id) == updated
    with pytest.raises(NotFoundError):
        await db.sessions.get("ses-hijacked")


async def test_session_errors(db: Store) -> None:
    await db.sessions.create(session_pb2.Session(id="ses-1", agent="a"))

    with pytest.raises(AlreadyExistsError):
        await db.sessions.create(session_pb2.Session(id="ses-1", agent="b"))
    with pytest.raises(InvalidArgumentError):
        await db.sessions.create(session_pb2.Session(id="bad\x00id"))
    with pytest.raises(NotFoundError) as caught:
        await db.sessions.get("ses-2")
    assert str(caught.value) == "session 'ses-2' not found"
    with pytest.raises(NotFoundError):
        await db.sessions.update("ses-2", lambda s: None)
    with pytest.raises(ConflictError):
        await db.sessions.update("ses-1", lambda s: None, expected_version=7)
    assert (await db.sessions.get("ses-1")).version == 1


async def test_sessions_list_by_agent(db: Store) -> None:
    made = [await db.sessions.create(session_pb2.Session(agent=f"a{i % 2}")) for i in range(6)]

    everything, token = await db.sessions.list()
    of_a1, _ = await db.sessions.list(agent="a1")

    assert token == ""
    assert [s.id for s in everything] == [s.id for s in reversed(made)]
    assert [s.id for s in of_a1] == [s.id for s in reversed(made) if s.agent == "a1"]
    assert await db.sessions.list(agent="nobody") == ([], "")


async def test_changing_the_agent_moves_the_session_between_indexes(db: Store) -> None:
    session = await db.sessions.create(session_pb2.Session(agent="old"))

    await db.sessions.update(session.id, lambda s: setattr(s, "agent", "new"))

    assert await db.sessions.list(agent="old") == ([], "")
    assert [s.id for s in (await db.sessions.list(agent="new"))[0]] == [session.id]


async def test_concurrent_get_or_create_returns_one_thread(db: Store) -> None:
    session = await db.sessions.create(session_pb2.Session(agent="a"))

    results = await asyncio.gather(
        *(db.threads.get_or_create_for_session(session.id) for _ in range(20))
    )

    assert sum(created for _, created in results) == 1
    assert len({thread.id for thread, _ in results}) == 1
    thread = results[0][0]
    assert thread.id.startswith("thr-")
    assert thread.session_id == session.id
    stored_session = await db.sessions.get(session.id)
    assert stored_session.thread_id == thread.id
    assert stored_session.version == 2


async def test_get_or_create_without_a_session_record(db: Store) -> None:
    thread, created = await db.threads.get_or_create_for_session("ses-elsewhere")
    again, created_again = await db.threads.get_or_create_for_session("ses-elsewhere")

    assert created and not created_again
    assert again == thread
    with pytest.raises(NotFoundError):
        await db.sessions.get("ses-elsewhere")
    with pytest.raises(InvalidArgumentError):
        await db.threads.get_or_create_for_session("")


async def test_append_messages_is_idempotent_per_report(db: Store) -> None:
    thread, _ = await db.threads.get_or_create_for_session("ses-x")

    first = await db.threads.append_messages(thread.id, "r1", [message("a"), message("b")])
    retried = await db.threads.append_messages(thread.id, "r1", [message("a"), message("b")])
    second = await db.threads.append_messages(thread.id, "r2", [message("c")])
    undeduplicated = await db.threads.append_messages(thread.id, "", [message("d")])
    again = await db.threads.append_messages(thread.id, "", [message("d")])

    assert [m.content for m in first.messages] == ["a", "b"]
    assert retried == first
    assert [m.content for m in second.messages] == ["a", "b", "c"]
    assert len(undeduplicated.messages) == 4
    assert [m.content for m in again.messages] == ["a", "b", "c", "d", "d"]
    assert again.version == 5
    assert await db.threads.get(thread.id) == again


async def test_report_ids_are_per_thread(db: Store) -> None:
    one, _ = await db.threads.get_or_create_for_session("ses-1")
    two, _ = await db.threads.get_or_create_for_session("ses-2")

    await db.threads.append_messages(one.id, "r", [message("x")])
    other = await db.threads.append_messages(two.id, "r", [message("y")])

    assert [m.content for m in other.messages] == ["y"]


async def test_concurrent_appends_lose_nothing(db: Store) -> None:
    thread, _ = await db.threads.get_or_create_for_session("ses-c")

    await asyncio.gather(
        *(db.threads.append_messages(thread.id, f"r{i}", [message(str(i))]) for i in range(20))
    )

    stored = await db.threads.get(thread.id)
    assert sorted(int(m.content) for m in stored.messages) == list(range(20))


async def test_thread_not_found(db: Store) -> None:
    with pytest.raises(NotFoundError) as caught:
        await db.threads.append_messages("thr-missing", "r", [message("x")])
    assert caught.value.kind == "thread"
    with pytest.raises(NotFoundError):
        await db.threads.get("thr-missing")


async def test_an_existing_thread_is_read_without_a_write(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "engine", 1 << 20)
    db = Store(engine)
    try:
        thread, _ = await db.threads.get_or_create_for_session("ses-x")
        # The writer is busy: only a read can answer before it is let go.
        async with held_writer(engine):
            found = await asyncio.wait_for(db.threads.get_or_create_for_session("ses-x"), 10)
        assert found == (thread, False)
    finally:
        db.close()


async def test_an_execution_its_new_session_and_thread_are_one_write(db: Store) -> None:
    session = session_pb2.Session(id="ses-new", agent="helper")
    execution = agent_execution_pb2.AgentExecution(session_id=session.id, agent="helper")

    created = await db.agent_executions.create(execution, then=db.threads.for_new_session(session))

    stored = await db.sessions.get(session.id)
    thread, was_created = await db.threads.get_or_create_for_session(session.id)
    assert not was_created
    assert stored.agent == "helper" and stored.thread_id == thread.id
    assert thread.session_id == session.id
    assert (await db.agent_executions.get(created.id)).session_id == session.id

    # A second execution in that session (a retried Create) keeps both as they are.
    await db.agent_executions.create(execution, then=db.threads.for_new_session(session))
    assert await db.sessions.get(session.id) == stored
    assert await db.threads.get(thread.id) == thread


async def test_a_failed_write_stores_no_new_session(db: Store) -> None:
    taken = await db.agent_executions.create(agent_execution_pb2.AgentExecution(agent="helper"))
    again = agent_execution_pb2.AgentExecution(id=taken.id, session_id="ses-lost", agent="helper")
    session = session_pb2.Session(id="ses-lost", agent="helper")

    with pytest.raises(AlreadyExistsError):
        await db.agent_executions.create(again, then=db.threads.for_new_session(session))

    with pytest.raises(NotFoundError):
        await db.sessions.get("ses-lost")
    _, created = await db.threads.get_or_create_for_session("ses-lost")
    assert created


async def test_a_repeated_request_does_not_run_its_write_again(db: Store) -> None:
    execution = agent_execution_pb2.AgentExecution(session_id="ses-once", agent="helper")
    first = db.threads.for_new_session(session_pb2.Session(id="ses-once", agent="helper"))
    created, is_new = await db.agent_executions.create_once(execution, "req-1", b"f", then=first)
    assert is_new
    session = await db.sessions.get("ses-once")

    def refuse(txn: object) -> None:
        raise AssertionError("a repeated request ran its write")

    repeated, is_new = await db.agent_executions.create_once(execution, "req-1", b"f", then=refuse)
    assert (repeated.id, is_new) == (created.id, False)
    assert await db.sessions.get("ses-once") == session
