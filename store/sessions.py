"""Sessions: the conversations of one agent."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from polyfleet import contract
from polyfleet.v1 import session_pb2
from store._collection import Collection, FieldIndex
from store.ids import new_id

if TYPE_CHECKING:
    from store._engine import Engine

Session = session_pb2.Session


class SessionRepository:
    """Sessions, listable newest first, overall or per agent."""

    def __init__(self, engine: Engine) -> None:
        """Open the session databases of ``engine``."""
        self._engine = engine
        self._items: Collection[Session] = Collection(
            engine, "session", Session, "sessions", [FieldIndex("agent", _agent)]
        )

    @property
    def collection(self) -> Collection[Session]:
        """The session collection, for repositories that update sessions in their own writes."""
        return self._items

    async def create(self, session: Session) -> Session:
        """Store a new session with version 1.

        Args:
            session: The session; its ID is generated when empty. It is not modified.

        Returns:
            The stored session.

        Raises:
            AlreadyExistsError: The preset ID is taken.

        """
        msg = self._items.copy(session)
        if not msg.id:
            msg.id = new_id(contract.SESSION_ID_PREFIX)
        return await self._engine.write(lambda txn: self._items.add(txn, self._items.copy(msg)))

    async def get(self, session_id: str) -> Session:
        """Return the session.

        Raises:
            NotFoundError: There is no such session.

        """
        return await self._engine.lookup(lambda txn: self._items.require(txn, session_id))

    async def list(
        self, agent: str = "", page_size: int = 0, page_token: str = ""
    ) -> tuple[list[Session], str]:
        """Return one page of sessions, newest first, and the next page token.

        Args:
            agent: Only sessions of this agent; empty for all.
            page_size: At most this many; non-positive means 50, and at most 1000.
            page_token: Empty for the first page, else a token returned by the previous call
                with the same ``agent``.

        Raises:
            InvalidPageTokenError: The token did not come from this list.

        """
        filters = {"agent": agent}
        return await self._engine.read(
            lambda txn: self._items.page(txn, filters, page_size, page_token)
        )

    async def update(
        self,
        session_id: str,
        mutate: Callable[[Session], None],
        expected_version: int | None = None,
    ) -> Session:
        """Apply ``mutate`` to the stored session in one write transaction.

        ``mutate`` runs in the store's writer thread and may run more than once (when the map
        grows), each time on a fresh copy; it must only change the session it is given. Changes
        to the ID and creation time are ignored; the version is incremented.

        Raises:
            NotFoundError: There is no such session.
            ConflictError: The stored version is not ``expected_version``.

        """
        return await self._engine.write(
            lambda txn: self._items.modify(txn, session_id, mutate, expected_version)
        )


def _agent(session: Session) -> str:
    return session.agent
