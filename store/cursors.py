"""Cursors: the durable position and state of the orchestrator's followers of a stream.

A follower (e.g. the event-driven schedules, ``orchestrator/event_schedules.py``) keeps here,
under its name, how far it has processed and what it carries between events. The store does
not interpret the data; one write replaces it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from store.ids import check_id

if TYPE_CHECKING:
    from store._engine import Engine, Txn


class CursorRepository:
    """One opaque value per follower name, overwritten by each write."""

    def __init__(self, engine: Engine) -> None:
        """Open the cursor database of ``engine``."""
        self._engine = engine
        self._cursors = engine.database("cursors")

    async def put(self, name: str, data: bytes) -> None:
        """Store ``data`` as the cursor ``name``, replacing any earlier value.

        Raises:
            InvalidArgumentError: ``name`` is empty, longer than 128 bytes or contains NUL.

        """
        key = check_id(name, "name")
        value = bytes(data)

        def put(txn: Txn) -> None:
            txn.put(key, value, db=self._cursors)

        await self._engine.write(put)

    async def get(self, name: str) -> bytes | None:
        """The cursor ``name``, or None before its first write."""
        key = check_id(name, "name")
        value = await self._engine.lookup(lambda txn: txn.get(key, db=self._cursors))
        return None if value is None else bytes(value)
