"""Concurrent writers never lose an update; stale writes are rejected."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from polyfleet.v1 import agent_execution_pb2, agent_pb2, session_pb2
from store import ConflictError, Store

AgentExecution = agent_execution_pb2.AgentExecution


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as opened:
        yield opened


def label_execution(key: str) -> Callable[[AgentExecution], None]:
    def mutate(execution: AgentExecution) -> None:
        execution.labels[key] = key.removeprefix("l")

    return mutate


def label_session(key: str) -> Callable[[session_pb2.Session], None]:
    def mutate(session: session_pb2.Session) -> None:
        session.labels[key] = "1"

    return mutate


async def test_concurrent_asyncio_updates_lose_nothing(db: Store) -> None:
    created = await db.agent_executions.create(AgentExecution(agent="a"))

    results = await asyncio.gather(
        *(db.agent_executions.update(created.id, label_execution(f"l{i}")) for i in range(20))
    )

    stored = await db.agent_executions.get(created.id)
    assert dict(stored.labels) == {f"l{i}": str(i) for i in range(20)}
    assert stored.version == 21
    assert sorted(r.version for r in results) == list(range(2, 22))


async def test_concurrent_writers_in_several_threads(db: Store) -> None:
    session = await db.sessions.create(session_pb2.Session(agent="a"))
    errors: list[BaseException] = []

    async def write_from_this_thread(worker: int) -> None:
        for i in range(10):
            await db.sessions.update(session.id, label_session(f"w{worker}-{i}"))
            await db.agents.create(agent_pb2.Agent(name=f"w{worker}-{i}"))

    def run(worker: int) -> None:
        try:
            asyncio.run(write_from_this_thread(worker))
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()

    def join_all() -> None:
        for thread in threads:
            thread.join(10)

    await asyncio.to_thread(join_all)

    assert errors == []
    stored = await db.sessions.get(session.id)
    assert len(stored.labels) == 40
    assert stored.version == 41
    agents, _ = await db.agents.list(page_size=100)
    assert len(agents) == 40


async def test_concurrent_versioned_updates_let_exactly_one_win(db: Store) -> None:
    created = await db.agents.create(agent_pb2.Agent(name="contended"))

    outcomes = await asyncio.gather(
        *(
            db.agents.update(
                agent_pb2.Agent(name="contended", description=str(i)), expected_version=1
            )
            for i in range(10)
        ),
        return_exceptions=True,
    )

    winners = [o for o in outcomes if isinstance(o, agent_pb2.Agent)]
    conflicts = [o for o in outcomes if isinstance(o, ConflictError)]
    assert len(winners) == 1 and len(conflicts) == 9
    assert all((c.expected, c.actual) == (1, 2) for c in conflicts)
    stored = await db.agents.get(created.id)
    assert stored == winners[0]


async def test_stale_execution_update_is_rejected(db: Store) -> None:
    created = await db.agent_executions.create(AgentExecution(agent="a", message="original"))
    await db.agent_executions.update(created.id, lambda e: setattr(e, "message", "fresh"))

    with pytest.raises(ConflictError) as caught:
        await db.agent_executions.update(
            created.id, lambda e: setattr(e, "message", "stale"), expected_version=1
        )

    assert str(caught.value) == (
        f"agent execution {created.id!r} was modified concurrently: expected version 1, "
        "stored version is 2"
    )
    stored = await db.agent_executions.get(created.id)
    assert (stored.message, stored.version) == ("fresh", 2)
