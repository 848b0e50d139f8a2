"""Workflow checkpoints: the latest opaque checkpoint of each execution."""

from __future__ import annotations

from typing import TYPE_CHECKING

from store.ids import MAX_ID_BYTES, check_id

if TYPE_CHECKING:
    from store._engine import Engine, Txn


class CheckpointRepository:
    """One opaque value per execution ID, overwritten by each checkpoint.

    Values may be several megabytes: LMDB stores large values on overflow pages, and the map
    grows when a value does not fit. The store does not interpret the bytes, nor check that the
    execution exists.
    """

    def __init__(self, engine: Engine) -> None:
        """Open the checkpoint database of ``engine``."""
        self._engine = engine
        self._checkpoints = engine.database("checkpoints")

    async def put(self, execution_id: str, data: bytes) -> None:
        """Store the execution's checkpoint, replacing any earlier one.

        Raises:
            InvalidArgumentError: ``execution_id`` is empty, longer than 128 bytes or contains
                NUL.

        """
        key = check_id(execution_id, "execution_id")
        value = bytes(data)

        def put(txn: Txn) -> None:
            txn.put(key, value, db=self._checkpoints)

        await self._engine.write(put)

    async def get(self, execution_id: str) -> bytes | None:
        """Return the execution's checkpoint, or None if it has none."""
        key = execution_id.encode()
        if not key or len(key) > MAX_ID_BYTES:
            return None  # such an ID cannot have been stored, and LMDB rejects the key
        return await self._engine.read(lambda txn: txn.get(key, db=self._checkpoints))

    async def delete(self, execution_id: str) -> None:
        """Delete the execution's checkpoint; nothing happens if it has none."""
        key = execution_id.encode()
        if not key or len(key) > MAX_ID_BYTES:
            return  # such an ID cannot have been stored

        def delete(txn: Txn) -> None:
            txn.delete(key, db=self._checkpoints)

        await self._engine.write(delete)
