"""Workflow checkpoints: the latest checkpoint of each execution, with its sequence number."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from store.errors import InvalidArgumentError
from store.ids import MAX_ID_BYTES, check_id

if TYPE_CHECKING:
    from store._engine import Engine, Txn

# A stored value is the sequence as 8 big-endian unsigned bytes, then the data.
_SEQUENCE_BYTES = 8
MAX_SEQUENCE = 2 ** (8 * _SEQUENCE_BYTES) - 1


@dataclass(frozen=True)
class Checkpoint:
    """One stored checkpoint.

    Attributes:
        sequence: The writer's sequence number of the checkpoint.
        data: The checkpoint itself, opaque to the store.

    """

    sequence: int
    data: bytes


class CheckpointRepository:
    """One checkpoint per execution ID, overwritten by each new one.

    Data may be several megabytes: LMDB stores large values on overflow pages, and the map
    grows when a value does not fit. The store does not interpret the data, nor check that the
    execution exists or that sequences increase.
    """

    def __init__(self, engine: Engine) -> None:
        """Open the checkpoint database of ``engine``."""
        self._engine = engine
        self._checkpoints = engine.database("checkpoints")

    async def put(self, execution_id: str, sequence: int, data: bytes) -> None:
        """Store the execution's checkpoint, replacing any earlier one.

        Raises:
            InvalidArgumentError: ``execution_id`` is empty, longer than 128 bytes or contains
                NUL; or ``sequence`` is negative or over :data:`MAX_SEQUENCE`.

        """
        key = check_id(execution_id, "execution_id")
        if not 0 <= sequence <= MAX_SEQUENCE:
            reason = "must not be negative" if sequence < 0 else f"must be at most {MAX_SEQUENCE}"
            raise InvalidArgumentError("sequence", reason)
        value = sequence.to_bytes(_SEQUENCE_BYTES, "big") + bytes(data)

        def put(txn: Txn) -> None:
            txn.put(key, value, db=self._checkpoints)

        await self._engine.write(put)

    async def get(self, execution_id: str) -> Checkpoint | None:
        """Return the execution's checkpoint, or None if it has none."""
        key = execution_id.encode()
        if not key or len(key) > MAX_ID_BYTES:
            return None  # such an ID cannot have been stored, and LMDB rejects the key
        value = await self._engine.lookup(lambda txn: txn.get(key, db=self._checkpoints))
        if value is None:
            return None
        return Checkpoint(
            sequence=int.from_bytes(value[:_SEQUENCE_BYTES], "big"),
            data=bytes(value[_SEQUENCE_BYTES:]),
        )

    async def delete(self, execution_id: str) -> None:
        """Delete the execution's checkpoint; nothing happens if it has none."""
        key = execution_id.encode()
        if not key or len(key) > MAX_ID_BYTES:
            return  # such an ID cannot have been stored

        def delete(txn: Txn) -> None:
            txn.delete(key, db=self._checkpoints)

        await self._engine.write(delete)
