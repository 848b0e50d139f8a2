"""The LMDB environment and the threads that run every transaction off the event loop."""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, TypeVar

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

R = TypeVar("R")


class Engine:
    """Owns the LMDB environment, its named databases and the threads that use them.

    Every write runs in one dedicated thread, so writes are serialized exactly as LMDB
    serializes them anyway, and that thread never holds a transaction while it grows the map.
    Reads run in a small pool, concurrently with the writer (LMDB's MVCC). Growing the map
    remaps memory under open read transactions, so reads hold a shared lock that growth takes
    exclusively.
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
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._readers = ThreadPoolExecutor(
            max_workers=READER_THREADS, thread_name_prefix="store-reader"
        )
        self._close_lock = threading.Lock()
        self._closed = False

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
        return await self._submit(self._readers, self._run_read, fn)

    async def write(self, fn: Callable[[Txn], R]) -> R:
        """Run ``fn`` in a write transaction in the writer thread and commit it.

        If ``fn`` raises, the transaction is aborted and nothing is written. If the map is full,
        the map is doubled and ``fn`` runs again in a new transaction, so ``fn`` must not have
        effects outside the transaction.
        """
        return await self._submit(self._writer, self._run_write, fn)

    def close(self) -> None:
        """Wait for queued transactions, then close the environment. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self._env.close()

    async def _submit(
        self, executor: Executor, runner: Callable[[Callable[[Txn], R]], R], fn: Callable[[Txn], R]
    ) -> R:
        if self._closed:
            raise StoreClosedError()
        try:
            future: Future[R] = executor.submit(runner, fn)
        except RuntimeError as exc:  # the executor shut down after the check above
            raise StoreClosedError() from exc
        return await asyncio.wrap_future(future)

    def _run_read(self, fn: Callable[[Txn], R]) -> R:
        # A transaction holds its reader slot until the Transaction object is freed, not
        # merely aborted. An exception's traceback keeps the frames that reference it alive
        # (until the garbage collector runs, if ever), so a burst of reads that raise, e.g.
        # NotFoundError, would exhaust the reader table. Free it deterministically instead.
        with self._remap_lock.shared():
            txn = self._env.begin()
            try:
                return fn(txn)
            except BaseException as exc:
                _release_frames(exc)
                raise
            finally:
                txn.abort()
                del txn

    def _run_write(self, fn: Callable[[Txn], R]) -> R:
        while True:
            try:
                timer = Timer()
                with self._env.begin(write=True) as txn:
                    result = fn(txn)
                # After the with block: the commit (durable, sync=True) is part of the time.
                STORE_COMMIT_DURATION.record(timer.seconds())
                if metrics.enabled():
                    info = self._env.info()
                    STORE_SIZE.set((info["last_pgno"] + 1) * self._page_size)
                return result
            except lmdb.MapFullError:
                # The transaction was aborted on the way out of the with block, so no
                # transaction is open in this thread and the map may be resized.
                self._grow()

    def _grow(self) -> None:
        with self._remap_lock.exclusive():
            current = self._env.info()["map_size"]
            if current >= MAX_MAP_SIZE:
                raise StoreError(f"LMDB map is full at its maximum size of {current} bytes")
            self._env.set_mapsize(min(current * 2, MAX_MAP_SIZE))
            self._map_size = self._env.info()["map_size"]
        logger.info("grew LMDB map at %s from %d to %d bytes", self._path, current, self._map_size)


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
