"""Threads: the persisted message history of a session."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from polyfleet.v1 import common_pb2, session_pb2
from store import _keys
from store._collection import Collection
from store.ids import check_id, new_id

if TYPE_CHECKING:
    from store._engine import Engine, Txn, WriteStep
    from store.sessions import SessionRepository

Session = session_pb2.Session
Thread = session_pb2.Thread


class ThreadRepository:
    """Threads, at most one per session, with idempotent message appends."""

    def __init__(self, engine: Engine, sessions: SessionRepository) -> None:
        """Open the thread databases of ``engine``.

        Args:
            engine: The store's engine.
            sessions: Sessions, whose ``thread_id`` is set when their thread is created.

        """
        self._engine = engine
        self._sessions = sessions.collection
        self._items: Collection[Thread] = Collection(engine, "thread", Thread, "threads")
        self._by_session = engine.database("threads.by_session")
        self._reports = engine.database("threads.reports")

    async def get_or_create_for_session(self, session_id: str) -> tuple[Thread, bool]:
        """Return the session's thread, creating it if it has none.

        A thread that exists is read on the event loop (``Engine.lookup``), without a write;
        otherwise lookup and creation happen in one write transaction, so concurrent callers
        get the same thread. When the session exists, its ``thread_id`` is set in the same
        transaction.

        Returns:
            The thread, and whether it was created.

        Raises:
            InvalidArgumentError: ``session_id`` is empty or cannot be a key.

        """
        session_key = check_id(session_id, "session_id")
        # Every turn of a session after its first finds the thread: no write, no commit.
        existing = await self._engine.lookup(lambda txn: self._find(txn, session_key))
        if existing is not None:
            return existing, False
        return await self._engine.write(
            lambda txn: self._get_or_create(txn, session_id, session_key)
        )

    def for_new_session(self, session: Session) -> WriteStep:
        """A write that stores ``session`` unless it exists, and its thread unless it has one.

        For the Create of an agent execution without a session: the execution, its new
        session and the session's thread are one commit (``ExecutionRepository.create``'s
        ``then``), and the run's EnsureThread then only reads.

        Raises:
            InvalidArgumentError: The session has no ID, or one that cannot be a key.

        """
        session_key = check_id(session.id, "session_id")
        new = Session()
        new.CopyFrom(session)

        def store(txn: Txn) -> None:
            exists = self._sessions.load(txn, new.id) is not None
            # Links an existing session to a thread it creates; a new one is stored linked.
            thread, _ = self._get_or_create(txn, new.id, session_key)
            if not exists:
                session = self._sessions.copy(new)
                session.thread_id = thread.id
                self._sessions.add(txn, session)

        return store

    def _find(self, txn: Txn, session_key: bytes) -> Thread | None:
        thread_id = txn.get(session_key, db=self._by_session)
        return None if thread_id is None else self._items.require(txn, thread_id.decode())

    def _get_or_create(self, txn: Txn, session_id: str, session_key: bytes) -> tuple[Thread, bool]:
        existing = self._find(txn, session_key)
        if existing is not None:
            return existing, False
        thread = self._items.add(txn, Thread(id=new_id("thr"), session_id=session_id))
        txn.put(session_key, thread.id.encode(), db=self._by_session)
        if self._sessions.load(txn, session_id) is not None:

            def link(session: Session) -> None:
                session.thread_id = thread.id

            self._sessions.modify(txn, session_id, link)
        return thread, True

    async def get(self, thread_id: str) -> Thread:
        """Return the thread.

        Raises:
            NotFoundError: There is no such thread.

        """
        return await self._engine.lookup(lambda txn: self._items.require(txn, thread_id))

    async def append_messages(
        self, thread_id: str, report_id: str, messages: Iterable[common_pb2.Message]
    ) -> Thread:
        """Append messages to the thread, once per report.

        Args:
            thread_id: The thread.
            report_id: Identifies the report carrying the messages; if it was already applied
                to this thread, nothing is appended. Empty means no deduplication.
            messages: Messages to append, in order.

        Returns:
            The thread as stored afterwards.

        Raises:
            NotFoundError: There is no such thread.
            InvalidArgumentError: ``report_id`` is too long.

        """
        return await self._engine.write(self.appending(thread_id, report_id, messages))

    def appending(
        self, thread_id: str, report_id: str, messages: Iterable[common_pb2.Message]
    ) -> Callable[[Txn], Thread]:
        """The write of :meth:`append_messages`, to run in another write's transaction.

        A progress report carrying its run's turn applies both in one commit
        (``ExecutionRepository.apply_report``'s ``then``).

        Raises:
            InvalidArgumentError: ``report_id`` is too long.

        """
        batch = [_copy(m) for m in messages]
        report_key = _keys.report_key(thread_id, report_id) if report_id else None

        def append(txn: Txn) -> Thread:
            stored = self._items.require(txn, thread_id)
            if report_key is not None:
                if txn.get(report_key, db=self._reports) is not None:
                    return stored
                txn.put(report_key, b"", db=self._reports)
            return self._items.modify(txn, thread_id, lambda t: t.messages.extend(batch))

        return append


def _copy(message: common_pb2.Message) -> common_pb2.Message:
    clone = common_pb2.Message()
    clone.CopyFrom(message)
    return clone
