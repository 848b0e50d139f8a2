"""Group commit: the writer commits what is queued as one durable transaction, write by write.

Each test holds the writer thread inside a write (``held_writer``), queues writes behind it and
then releases it, so the queued writes form one batch deterministically.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import lmdb
import pytest

from polyfleet.v1 import agent_execution_pb2, common_pb2
from store import Store, StoreClosedError
from store._engine import MAX_BATCH_WRITES, Engine
from tests.helpers import assert_eventually, held_writer

if TYPE_CHECKING:
    from store._engine import Database, Txn

T = TypeVar("T")
AgentExecution = agent_execution_pb2.AgentExecution
TINY_MAP = 64 * 1024


async def queue(writes: list[Awaitable[T]]) -> list[asyncio.Task[T]]:
    """Start the writes and return once each has reached the writer's queue."""
    futures = [asyncio.ensure_future(w) for w in writes]
    await asyncio.sleep(0)  # every task runs up to its await, i.e. queues its write
    return futures


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    opened = Engine(tmp_path / "engine", 1 << 20)
    yield opened
    opened.close()


def put(db: Database, key: bytes, value: bytes) -> Callable[[Txn], int]:
    """A write that puts one value and returns its transaction's ID."""

    def write(txn: Txn) -> int:
        txn.put(key, value, db=db)
        return txn.id()

    return write


async def test_queued_writes_commit_as_one_transaction_in_queue_order(engine: Engine) -> None:
    db = engine.database("t")

    def append(i: int) -> Callable[[Txn], tuple[int, bytes]]:
        def write(txn: Txn) -> tuple[int, bytes]:
            seen = txn.get(b"log", db=db) or b""
            txn.put(b"log", seen + bytes([i]), db=db)
            return txn.id(), seen

        return write

    async with held_writer(engine):
        futures = await queue([engine.write(append(i)) for i in range(50)])

    results = await asyncio.gather(*futures)
    assert len({txn_id for txn_id, _ in results}) == 1, "one transaction"
    # Each write saw exactly the writes queued before it.
    assert [seen for _, seen in results] == [bytes(range(i)) for i in range(50)]
    assert await engine.read(lambda txn: txn.get(b"log", db=db)) == bytes(range(50))


async def test_a_failing_write_is_rolled_back_alone(engine: Engine) -> None:
    db = engine.database("t")
    boom = ValueError("boom")

    def fail(txn: Txn) -> None:
        txn.put(b"b", b"2", db=db)
        raise boom

    def after(txn: Txn) -> tuple[int, bytes | None]:
        txn.put(b"c", b"3", db=db)
        return txn.id(), txn.get(b"b", db=db)

    async with held_writer(engine):
        (first,) = await queue([engine.write(put(db, b"a", b"1"))])
        (failing,) = await queue([engine.write(fail)])
        (last,) = await queue([engine.write(after)])

    with pytest.raises(ValueError) as raised:
        await failing
    assert raised.value is boom
    txn_id, seen = await last
    assert txn_id == await first, "the others committed in the same transaction"
    assert seen is None, "the next write does not see the failed one"

    def read_all(txn: Txn) -> dict[bytes, bytes]:
        return {bytes(k): bytes(v) for k, v in txn.cursor(db=db)}

    assert await engine.read(read_all) == {b"a": b"1", b"c": b"3"}


async def test_a_batch_is_bounded(engine: Engine) -> None:
    db = engine.database("t")
    count = MAX_BATCH_WRITES + 10

    async with held_writer(engine):
        futures = await queue([engine.write(put(db, b"k%d" % i, b"v")) for i in range(count)])

    txn_ids = await asyncio.gather(*futures)
    assert txn_ids[0] != txn_ids[-1]
    assert txn_ids.count(txn_ids[0]) == MAX_BATCH_WRITES
    assert txn_ids[MAX_BATCH_WRITES:] == [txn_ids[-1]] * 10


async def test_map_full_mid_batch_grows_and_reruns_the_batch(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "engine", TINY_MAP)
    try:
        db = engine.database("t")
        start = engine.map_size
        runs: dict[int, int] = {}
        big = b"x" * 20_000

        def write(i: int) -> Callable[[Txn], bytes]:
            def run(txn: Txn) -> bytes:
                runs[i] = runs.get(i, 0) + 1
                log = txn.get(b"log", db=db) or b""
                txn.put(b"log", log + bytes([i]), db=db)
                if i == 3:
                    raise ValueError("rejected")
                txn.put(b"big-%d" % i, big, db=db)  # the map fills after a few of these
                return log

            return run

        async with held_writer(engine):
            futures = await queue([engine.write(write(i)) for i in range(12)])

        outcomes = await asyncio.gather(*futures, return_exceptions=True)

        assert engine.map_size > start, "the map grew"
        assert runs[0] > 1, "the writes before the full map ran again in the new transaction"
        assert isinstance(outcomes[3], ValueError)
        committed = [i for i in range(12) if i != 3]
        # Every caller got the result of the run that was committed, in queue order.
        assert outcomes[:3] == [bytes(range(i)) for i in range(3)]
        assert outcomes[4:] == [bytes([*range(3), *range(4, i)]) for i in range(4, 12)]

        def read_all(txn: Txn) -> dict[bytes, bytes]:
            return {bytes(k): bytes(v) for k, v in txn.cursor(db=db)}

        stored = await engine.read(read_all)
        assert stored.pop(b"log") == bytes(committed), "each write committed exactly once"
        assert stored == {b"big-%d" % i: big for i in committed}
    finally:
        engine.close()


async def test_a_full_transaction_carries_the_rest_to_the_next(engine: Engine) -> None:
    db = engine.database("t")
    first_txn: list[int] = []
    tries = 0

    def first_write(txn: Txn) -> int:
        first_txn.append(txn.id())  # a nested transaction has its parent's ID
        return put(db, b"a", b"1")(txn)

    def too_much_beside_the_first(txn: Txn) -> int:
        nonlocal tries
        tries += 1
        if txn.id() == first_txn[-1]:  # as LMDB reports a batch that is full with it
            raise lmdb.TxnFullError("mdb_put: MDB_TXN_FULL")
        return put(db, b"b", b"2")(txn)

    async with held_writer(engine):
        first, second, third = await queue(
            [
                engine.write(first_write),
                engine.write(too_much_beside_the_first),
                engine.write(put(db, b"c", b"3")),
            ]
        )

    assert await second == await third, "the rest ran together in the next transaction"
    assert await first != await second
    assert await engine.read(lambda txn: txn.get(b"b", db=db)) == b"2"
    assert tries >= 2


async def test_a_write_failing_alone_in_its_batch_does_not_rerun_the_others(
    engine: Engine,
) -> None:
    db = engine.database("t")
    runs: list[str] = []

    def fail(txn: Txn) -> None:
        runs.append("fail")
        txn.put(b"partial", b"x", db=db)
        raise ValueError("boom")

    def counted(key: bytes) -> Callable[[Txn], int]:
        def write(txn: Txn) -> int:
            runs.append(key.decode())
            return put(db, key, b"v")(txn)

        return write

    async with held_writer(engine):
        futures = await queue(
            [engine.write(fail), engine.write(counted(b"a")), engine.write(counted(b"b"))]
        )

    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert isinstance(outcomes[0], ValueError)
    assert outcomes[1] == outcomes[2], "the others committed together"
    assert runs == ["fail", "a", "b"], "the first write's failure costs no re-run"
    assert await engine.read(lambda txn: txn.get(b"partial", db=db)) is None


async def test_a_cancelled_write_that_has_not_started_never_runs(engine: Engine) -> None:
    db = engine.database("t")
    ran: list[str] = []

    def write(txn: Txn) -> None:
        ran.append("ran")

    async with held_writer(engine):
        (cancelled,) = await queue([engine.write(write)])
        cancelled.cancel()
        kept = await queue([engine.write(put(db, b"k", b"v"))])

    await asyncio.gather(*kept)
    assert cancelled.cancelled()
    assert ran == []


async def test_close_drains_the_queue(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "engine", 1 << 20)
    db = engine.database("t")
    async with held_writer(engine):
        futures = await queue([engine.write(put(db, b"k%d" % i, b"v")) for i in range(100)])
        closing = asyncio.ensure_future(asyncio.to_thread(engine.close))

        async def closed() -> bool:
            return engine._closed

        # close() has queued its stop behind the writes and waits for the writer.
        await assert_eventually(closed, bool, message="close() did not start")
        with pytest.raises(StoreClosedError):
            await engine.write(put(db, b"late", b"v"))

    await closing
    assert len(set(await asyncio.gather(*futures))) == 1, "drained as one batch"

    reopened = Engine(tmp_path / "engine", 1 << 20)
    try:
        db = reopened.database("t")
        stored = await reopened.read(lambda txn: [bytes(k) for k, _ in txn.cursor(db=db)])
        assert sorted(stored) == sorted(b"k%d" % i for i in range(100))
    finally:
        reopened.close()


async def test_concurrent_reports_each_apply_once_in_order(tmp_path: Path) -> None:
    callers, reports = 32, 40

    def merge(execution: AgentExecution, update: common_pb2.ExecutionUpdate) -> None:
        if update.output_text == "reject":
            raise ValueError("rejected by merge")
        execution.status.output_text += update.output_text

    with Store.open(tmp_path / "store") as db:
        ids = [(await db.agent_executions.create(AgentExecution(agent="a"))).id for _ in range(4)]

        async def report(caller: int) -> int:
            rejected = 0
            execution_id = ids[caller % len(ids)]
            for i in range(reports):
                text = "reject" if i % 10 == 9 else f"{caller}.{i};"
                try:
                    await db.agent_executions.apply_report(
                        execution_id,
                        f"{caller}-{i}",
                        "runner",
                        common_pb2.ExecutionUpdate(output_text=text),
                        merge,
                    )
                except ValueError:
                    rejected += 1
            return rejected

        assert await asyncio.gather(*(report(c) for c in range(callers))) == [4] * callers

        for n, execution_id in enumerate(ids):
            execution = await db.agent_executions.get(execution_id)
            mine = [c for c in range(callers) if c % len(ids) == n]
            applied = [p for p in execution.status.output_text.split(";") if p]
            assert sorted(applied) == sorted(
                f"{c}.{i}" for c in mine for i in range(reports) if i % 10 != 9
            )
            for c in mine:  # each caller's reports in the order it sent them
                own = [p for p in applied if p.startswith(f"{c}.")]
                assert own == [f"{c}.{i}" for i in range(reports) if i % 10 != 9]
            events = await db.agent_executions.events(execution_id)
            assert [e.sequence for e in events] == list(range(1, len(applied) + 1))
            assert execution.status.last_sequence == len(applied)
