"""The LMDB environment, its writer thread and its readers.

Point reads (``Engine.lookup``) run on the event loop's thread; scans run in a reader pool.

Writes are group-committed: one writer thread takes every write queued at that moment (at most
``MAX_BATCH_WRITES``) and commits them as one durable LMDB transaction. A write that raises is
rolled back alone (the batch then runs again with each write in its own nested transaction).
Every caller is answered only after the commit of its batch is on disk.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import lmdb

from polyfleet.telemetry import metrics
from polyfleet.telemetry.metrics import STORE_COMMIT_DURATION, STORE_SIZE, Timer
from store._rwlock import ReadWriteLock
from store.errors import StoreClosedError, StoreError

if TYPE_CHECKING:
    Txn: TypeAlias = lmdb.Transaction[bytes]
    Database: TypeAlias = lmdb._Database

logger = logging.getLogger(__name__)

DEFAULT_MAP_SIZE = 64 * 1024 * 1024
# Growth stops here so a runaway writer fails loudly instead of reserving the address space.
MAX_MAP_SIZE = 1 << 40
_MAX_DBS = 64
READER_THREADS = 4
# Reader slots in the lock file. Every live read transaction holds one, and at most
# READER_THREADS run at once (py-lmdb may keep one more as a spare for reuse). The other 27
# are headroom for read-only tools run beside the orchestrator (mdb_stat, mdb_copy backups)
# and for slots a killed process left until reader_check() reclaims them. Deliberately far
# below LMDB's default of 126, so a leak of slots fails loudly in tests instead of hiding.
MAX_READERS = 32
# Writes committed together at most. A batch is also cut where LMDB's limit on the pages one
# transaction may dirty (MDB_TXN_FULL) is reached, so large values cannot grow it without limit.
MAX_BATCH_WRITES = 256

R = TypeVar("R")
# A write that runs in a transaction another write opened, committed with it: the ``then`` of
# ExecutionRepository.apply_report (a report's thread append) and of create/create_once (an
# execution's new session and thread).
WriteStep: TypeAlias = Callable[["Txn"], object]


class _Write:
    """One queued write: its function, its caller's future and, once run, its outcome."""

    __slots__ = ("error", "fn", "future", "loop", "result")

    def __init__(
        self, fn: Callable[[Txn], Any], loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]
    ) -> None:
        self.fn = fn
        self.loop = loop
        self.future = future
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self, txn: Txn) -> None:
        """Run the function in ``txn``, recording its result (MapFullError propagates)."""
        self.error = None
        self.result = self.fn(txn)

    def fail(self, error: BaseException) -> None:
        """Record ``error`` as the outcome."""
        self.result = None
        self.error = error


# Queued by close() after the last write: the writer thread stops when it reaches it.
_CLOSE = object()


class Engine:
    """Owns the LMDB environment, its named databases and the threads that use them.

    Every write runs in one dedicated thread, so writes are serialized exactly as LMDB
    serializes them anyway, and that thread never holds a transaction while it grows the map.
    The writer group-commits: it drains the queue, runs the writes in their queue order in
    one batch transaction (each in a nested transaction of it once one of them has failed) and
    commits the batch with one fsync. Scans run in a small pool and point reads on the
    caller's thread, concurrently with the writer (LMDB's MVCC). Growing the map remaps memory
    under open read transactions, so reads hold a shared lock that growth takes exclusively.
    """

    def __init__(self, path: Path, map_size: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._path = path
        # sync=True (and metasync, the default) makes every commit durable before it returns:
        # an acknowledged write survives kill -9 and power loss.
        self._env = lmdb.open(
            str(path),
            map_size=map_size,
            max_dbs=_MAX_DBS,
            max_readers=MAX_READERS,
            sync=True,
            metasync=True,
            lock=True,
        )
        # A process killed mid-read leaves its reader slot behind; reclaim it now.
        self._env.reader_check()
        # LMDB raises the requested size to the space the data already uses.
        self._map_size = self._env.info()["map_size"]
        self._page_size: int = self._env.stat()["psize"]
        self._dbs: dict[str, Database] = {}
        self._remap_lock = ReadWriteLock()
        self._queue: queue.SimpleQueue[_Write | object] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
        self._readers = ThreadPoolExecutor(
            max_workers=READER_THREADS, thread_name_prefix="store-reader"
        )
        # Guards _closed and the queue together, so no write is queued behind _CLOSE.
        self._close_lock = threading.Lock()
        self._closed = False
        self._env_closed = False
        self._writer.start()

    @property
    def path(self) -> Path:
        """Directory holding the LMDB files."""
        return self._path

    @property
    def map_size(self) -> int:
        """Current size of the memory map in bytes."""
        return self._map_size

    @property
    def reader_slots(self) -> int:
        """Reader-table slots handed out so far: LMDB's high-water mark, at most MAX_READERS."""
        return int(self._env.info()["num_readers"])

    def database(self, name: str) -> Database:
        """Open (creating if needed) the named sub-database.

        Only called while the store is being assembled, before any transaction runs.
        """
        db = self._dbs.get(name)
        while db is None:
            try:
                db = self._env.open_db(name.encode())
            except lmdb.MapFullError:
                self._grow()  # a tiny initial map may not even hold the database catalogue
        self._dbs[name] = db
        return db

    async def read(self, fn: Callable[[Txn], R]) -> R:
        """Run ``fn`` in a read-only transaction in the reader pool."""
        if self._closed:
            raise StoreClosedError()
        try:
            future: Future[R] = self._readers.submit(self._run_read, fn)
        except RuntimeError as exc:  # the pool shut down after the check above
            raise StoreClosedError() from exc
        return await asyncio.wrap_future(future)

    async def lookup(self, fn: Callable[[Txn], R]) -> R:
        """Run ``fn``, a point read, in a read-only transaction on the event loop's thread.

        For reads that fetch a few keys, not scans: a B-tree lookup in the memory map takes
        microseconds, where handing it to the reader pool and back to the event loop costs
        about 100 µs of CPU (docs/benchmarks.md). It can only wait for the rare map growth,
        which holds the remap lock while the pool's reads in progress end. Like a pool
        read, it lets other tasks run first, so a loop of reads cannot starve them.
        """
        await asyncio.sleep(0)
        if self._closed:
            raise StoreClosedError()
        return self._run_read(fn)

    async def write(self, fn: Callable[[Txn], R]) -> R:
        """Run ``fn`` in a write transaction in the writer thread and commit it durably.

        ``fn`` runs in the transaction of the batch of writes queued with it, after the
        writes queued before it (it sees their changes). If ``fn`` raises, nothing of it is
        written and the exception is raised here; the other writes of the batch are
        unaffected (they may run again, each in a nested transaction, see _run_writes). The
        result (or exception) is returned only after the batch's commit is on disk. If the
        map is full, the map is doubled and the batch runs again from its first write in a
        new transaction, so ``fn`` may run more than once and must not have effects outside
        the transaction.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._close_lock:
            if self._closed:
                raise StoreClosedError()
            self._queue.put(_Write(fn, loop, future))
        return await future

    def close(self) -> None:
        """Wait for queued transactions, then close the environment. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_CLOSE)
        self._writer.join()
        self._readers.shutdown(wait=True)
        # Lookups run on their callers' threads: wait for any in progress, refuse the rest.
        with self._remap_lock.exclusive():
            self._env_closed = True
            self._env.close()

    def _run_read(self, fn: Callable[[Txn], R]) -> R:
        # A transaction holds its reader slot until the Transaction object is freed, not
        # merely aborted. An exception's traceback keeps the frames that reference it alive
        # (until the garbage collector runs, if ever), so a burst of reads that raise, e.g.
        # NotFoundError, would exhaust the reader table. Free it deterministically instead.
        with self._remap_lock.shared():
            if self._env_closed:
                raise StoreClosedError()
            txn = self._env.begin()
            try:
                return fn(txn)
            except BaseException as exc:
                _release_frames(exc)
                raise
            finally:
                txn.abort()
                del txn

    def _write_loop(self) -> None:
        """The writer thread: take what is queued, commit it as one batch, until _CLOSE."""
        closing = False
        while not closing:
            batch: list[_Write] = []
            item = self._queue.get()
            while True:
                if item is _CLOSE:
                    closing = True  # queued last, under the close lock: the batch is complete
                    break
                assert isinstance(item, _Write)
                batch.append(item)
                if len(batch) >= MAX_BATCH_WRITES:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._run_batch(batch)

    def _run_batch(self, batch: list[_Write]) -> None:
        """Commit ``batch`` (in parts if LMDB requires) and answer every caller."""
        # A caller that was cancelled before its write started no longer wants it.
        pending = [write for write in batch if not write.future.cancelled()]
        while pending:
            try:
                committed, pending = self._commit(pending)
            except lmdb.MapFullError:
                # _commit aborted its transaction, so no transaction is open in this thread
                # and the map may be resized; the whole batch runs again from the start.
                try:
                    self._grow()
                except BaseException as exc:  # noqa: BLE001 - every caller gets it
                    committed, pending = _failed(pending, exc), []
                else:
                    continue
            except BaseException as exc:  # noqa: BLE001 - the commit failed: nothing written
                committed, pending = _failed(pending, exc), []
            _answer(committed)

    def _commit(self, writes: list[_Write]) -> tuple[list[_Write], list[_Write]]:
        """Run ``writes`` in one transaction and commit it: (answered writes, writes left).

        The writes left are those after a write that hit LMDB's dirty-page limit in a batch,
        to commit in the next transaction. Raises MapFullError (nothing is committed, no
        transaction stays open) and the commit's errors.
        """
        timer = Timer()
        txn, left = self._run_writes(writes)
        try:
            txn.commit()  # durable (sync=True) before any caller is answered
        except BaseException:
            txn.abort()
            raise
        STORE_COMMIT_DURATION.record(timer.seconds())
        if metrics.enabled():
            info = self._env.info()
            STORE_SIZE.set((info["last_pgno"] + 1) * self._page_size)
        return writes[: len(writes) - len(left)], left

    def _run_writes(self, writes: list[_Write]) -> tuple[Txn, list[_Write]]:
        """Run ``writes`` in a new transaction: (the open transaction, writes left for the next).

        Each write first runs directly in the batch transaction: a nested transaction per
        write costs a child to begin and commit and a copy of every page the write touches
        (about 14% of the instructions of a progress report, docs/benchmarks.md). A write
        that raises may leave part of its changes behind, so the transaction is dropped: when
        the write was the first in it, aborting drops only its own changes, it is answered
        with its error and the writes after it start again in a new transaction; otherwise
        the writes from that transaction's first run again, each in its own nested
        transaction (_run_nested), which rolls a failing write back alone. Writes may run
        more than once anyway (map growth), and a failing write costs its batch at most one
        extra run.
        """
        first = 0
        txn = self._env.begin(write=True)
        try:
            for index, write in enumerate(writes):
                try:
                    write.run(txn)
                except lmdb.MapFullError:
                    raise
                except BaseException as exc:  # noqa: BLE001 - handled below or by its caller
                    txn.abort()
                    txn = self._env.begin(write=True)
                    if index > first:
                        return txn, self._run_nested(txn, writes[first:])
                    # Alone in the transaction: its own error, or too large for any
                    # transaction (MDB_TXN_FULL); nothing of another write was lost.
                    write.fail(exc)
                    first = index + 1
            return txn, []
        except BaseException:
            txn.abort()
            raise

    def _run_nested(self, txn: Txn, writes: list[_Write]) -> list[_Write]:
        """Run each write in its own nested transaction of ``txn``: the writes left.

        The writes left are those from a write that hit LMDB's dirty-page limit after
        others; they go to the next transaction. Raises MapFullError (``txn`` is then
        unusable).
        """
        for index, write in enumerate(writes):
            child = self._env.begin(write=True, parent=txn)
            try:
                write.run(child)
                child.commit()
            except lmdb.MapFullError:
                child.abort()
                raise
            except lmdb.TxnFullError as exc:
                child.abort()
                if index > 0:  # the writes before it fill this transaction; it gets the next
                    return writes[index:]
                write.fail(exc)  # too large even for a transaction of its own
            except BaseException as exc:  # noqa: BLE001 - its caller gets it
                child.abort()
                write.fail(exc)
        return []

    def _grow(self) -> None:
        with self._remap_lock.exclusive():
            current = self._env.info()["map_size"]
            if current >= MAX_MAP_SIZE:
                raise StoreError(f"LMDB map is full at its maximum size of {current} bytes")
            self._env.set_mapsize(min(current * 2, MAX_MAP_SIZE))
            self._map_size = self._env.info()["map_size"]
        logger.info("grew LMDB map at %s from %d to %d bytes", self._path, current, self._map_size)


def _failed(writes: list[_Write], error: BaseException) -> list[_Write]:
    for write in writes:
        write.fail(error)
    return writes


def _answer(writes: list[_Write]) -> None:
    """Hand each outcome to its caller's event loop: one wake-up per loop and batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Write]] = {}
    for write in writes:
        by_loop.setdefault(write.loop, []).append(write)
    for loop, answered in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, answered)
        except RuntimeError:  # the loop is closed: nobody waits for these any more
            pass


def _resolve(writes: list[_Write]) -> None:
    """Runs in the caller's event loop."""
    for write in writes:
        if write.future.done():  # cancelled while the batch ran
            continue
        if write.error is None:
            write.future.set_result(write.result)
        elif isinstance(write.error, StopIteration):  # a future refuses StopIteration
            write.future.set_exception(RuntimeError("a store write raised StopIteration"))
        else:
            write.future.set_exception(write.error)


def _release_frames(exc: BaseException) -> None:
    """Drop the locals of the finished frames of ``exc`` and of its cause and context chain.

    The traceback keeps its file and line numbers, so the error stays debuggable, but no
    longer keeps a transaction (or anything else a frame referenced) alive.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        # Frames still executing (this one) are skipped; the caller drops its own locals.
        traceback.clear_frames(current.__traceback__)
        pending.extend((current.__cause__, current.__context__))
