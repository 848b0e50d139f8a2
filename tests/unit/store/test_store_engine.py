"""The environment: map growth, threads, durability across reopen, close."""

from __future__ import annotations

import asyncio
import gc
import threading
from pathlib import Path

import pytest

from polyfleet.v1 import agent_execution_pb2, agent_pb2, common_pb2
from store import DEFAULT_MAP_SIZE, NotFoundError, Store, StoreClosedError
from store._engine import READER_THREADS

AgentExecution = agent_execution_pb2.AgentExecution
TINY_MAP = 64 * 1024


async def test_the_map_grows_transparently(tmp_path: Path) -> None:
    payload = "x" * 50_000
    with Store.open(tmp_path / "store", map_size=TINY_MAP) as db:
        assert db.map_size >= TINY_MAP
        created = []
        for i in range(100):  # about 5 MB
            created.append(
                await db.agents.create(agent_pb2.Agent(name=f"agent-{i}", description=payload))
            )

        assert db.map_size >= 5_000_000
        for agent in created:
            assert await db.agents.get(agent.name) == agent

    with Store.open(tmp_path / "store", map_size=TINY_MAP) as reopened:
        assert reopened.map_size >= 5_000_000, "the map holds at least the data"
        agents, _ = await reopened.agents.list(page_size=1000)
        assert len(agents) == 100
        assert all(a.description == payload for a in agents)
        after = await reopened.agents.create(agent_pb2.Agent(name="after", description=payload))
        assert await reopened.agents.get("after") == after


async def test_reads_run_safely_while_the_map_grows(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store", map_size=TINY_MAP) as db:
        seed = await db.agents.create(agent_pb2.Agent(name="seed", description="s"))
        stop = asyncio.Event()

        async def read_continuously() -> int:
            reads = 0
            while not stop.is_set():
                assert await db.agents.get("seed") == seed
                reads += 1
            return reads

        readers = [asyncio.create_task(read_continuously()) for _ in range(8)]
        start = db.map_size
        await asyncio.gather(
            *(
                db.agents.create(agent_pb2.Agent(name=f"big-{i}", description="y" * 100_000))
                for i in range(40)
            )
        )
        stop.set()

        assert sum(await asyncio.gather(*readers)) > 0
        assert db.map_size > start
        agents, _ = await db.agents.list(page_size=100)
        assert len(agents) == 41


async def test_update_grows_the_map_and_runs_the_mutator_on_fresh_copies(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store", map_size=TINY_MAP) as db:
        created = await db.agent_executions.create(AgentExecution(agent="a"))

        def grow(execution: AgentExecution) -> None:
            execution.status.messages.add(content="z" * 400_000)

        updated = await db.agent_executions.update(created.id, grow)

        assert len(updated.status.messages) == 1, "a retried mutator starts from the stored copy"
        assert await db.agent_executions.get(created.id) == updated


async def test_lmdb_work_runs_off_the_event_loop_thread(tmp_path: Path) -> None:
    threads: list[str] = []

    def record(execution: AgentExecution, update: common_pb2.ExecutionUpdate) -> None:
        threads.append(threading.current_thread().name)

    with Store.open(tmp_path / "store") as db:
        created = await db.agent_executions.create(AgentExecution(agent="a"))
        await db.agent_executions.update(
            created.id, lambda e: record(e, common_pb2.ExecutionUpdate())
        )
        await db.agent_executions.apply_report(
            created.id, "r", "runner", common_pb2.ExecutionUpdate(), record
        )

    assert len(threads) == 2
    assert all(name.startswith("store-writer") for name in threads)


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "store"
    with Store.open(path) as db:
        agent = await db.agents.create(agent_pb2.Agent(name="kept"))
        assert db.path == path
        assert db.map_size == DEFAULT_MAP_SIZE

    assert path.is_dir()
    with Store.open(path) as reopened:
        assert await reopened.agents.get("kept") == agent
        with pytest.raises(NotFoundError):
            await reopened.agents.get("other")


async def test_close_is_idempotent_and_final(tmp_path: Path) -> None:
    db = Store.open(tmp_path / "store")
    await db.agents.create(agent_pb2.Agent(name="a"))

    db.close()
    db.close()

    with pytest.raises(StoreClosedError):
        await db.agents.get("a")
    with pytest.raises(StoreClosedError):
        await db.agents.create(agent_pb2.Agent(name="b"))


async def test_close_waits_for_queued_writes(tmp_path: Path) -> None:
    db = Store.open(tmp_path / "store")
    writes = [
        asyncio.ensure_future(db.agents.create(agent_pb2.Agent(name=f"q{i}"))) for i in range(20)
    ]
    await asyncio.sleep(0)  # let every write reach the writer thread's queue

    await asyncio.to_thread(db.close)

    assert len(await asyncio.gather(*writes)) == 20
    with Store.open(tmp_path / "store") as reopened:
        agents, _ = await reopened.agents.list()
        assert len(agents) == 20


async def test_reads_that_raise_release_their_reader_slots(tmp_path: Path) -> None:
    # With the collector off, only deterministic release frees a slot: a transaction kept
    # alive by an exception's traceback would hold its slot until the table is full.
    gc.disable()
    try:
        with Store.open(tmp_path / "store") as db:
            existing = await db.agent_executions.create(AgentExecution(agent="a"))

            async def miss(client: int) -> int:
                misses = 0
                for call in range(100):
                    try:
                        await db.agents.get(f"missing-{client}-{call}")
                    except NotFoundError:
                        misses += 1
                return misses

            assert await asyncio.gather(*(miss(c) for c in range(16))) == [100] * 16

            assert db.reader_slots <= READER_THREADS + 1, "one slot per reader thread"
            assert await db.agent_executions.get(existing.id) == existing
    finally:
        gc.enable()


async def test_point_reads_run_on_the_loop_thread_and_scans_in_the_pool(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store") as db:
        created = await db.agent_executions.create(AgentExecution(agent="a"))
        engine = db._engine
        threads: list[str] = []

        def where(txn: object) -> str:
            threads.append(threading.current_thread().name)
            return "read"

        assert await engine.lookup(where) == "read"
        assert await engine.read(where) == "read"

        assert threads[0] == threading.current_thread().name
        assert threads[1].startswith("store-reader")
        assert await db.agent_executions.get(created.id) == created


async def test_lookups_yield_to_other_tasks(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store") as db:
        await db.agents.create(agent_pb2.Agent(name="seed"))
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        for _ in range(50):
            await db.agents.get("seed")
        ticker.cancel()

        assert ticks >= 50, "every lookup let the other task run"


async def test_lookups_after_close_or_during_it_are_refused(tmp_path: Path) -> None:
    db = Store.open(tmp_path / "store")
    await db.agents.create(agent_pb2.Agent(name="a"))
    engine = db._engine

    await asyncio.to_thread(db.close)

    with pytest.raises(StoreClosedError):
        await db.agents.get("a")
    # A lookup that passed the closed check just before close() began reaches the read once
    # close() has released the remap lock: it is refused, not run on the closed environment.
    with pytest.raises(StoreClosedError):
        engine._run_read(lambda txn: txn.get(b"a"))
