"""CloudEvents: one global, append-only stream with a sequence, deduplication and retention.

Events published through EventService and by workflows' `emit` tasks are appended here with
the next global sequence number (gap-free from 1) and the store's receive time (from the
process clock that never goes backwards, so receive times never decrease with the sequence
and compare with executions' creation times). ``(source, id)`` identifies an event: appending
one already stored returns the stored record. Only the newest ``retention`` events are kept;
older ones (and their identity records, so the deduplication window is the retention) are
deleted by the append that goes over it.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from polyfleet.v1 import event_pb2
from store._resource import now
from store.errors import InvalidArgumentError

if TYPE_CHECKING:
    from store._engine import Database, Engine, Txn

EventRecord = event_pb2.EventRecord

#: Events kept by default (``POLYFLEET_STORE_EVENT_RETENTION``).
DEFAULT_RETENTION = 10_000
_U64 = struct.Struct(">Q")
_MAX_IDENTITY_BYTES = 400


def _identity(source: str, event_id: str) -> bytes:
    key = source.encode() + b"\0" + event_id.encode()
    if len(key) > _MAX_IDENTITY_BYTES:
        raise InvalidArgumentError(
            "event.source", f"source and id together must be at most {_MAX_IDENTITY_BYTES} bytes"
        )
    return key


class EventRepository:
    """The event stream, keyed by ``u64be(sequence)``; ``source NUL id`` → its sequence.

    Attributes:
        retention: Events kept; the oldest beyond it are deleted on append (at least 1).

    """

    def __init__(self, engine: Engine, retention: int = DEFAULT_RETENTION) -> None:
        """Open the event databases of ``engine``."""
        self._engine = engine
        self._events = engine.database("events")
        self._ids = engine.database("events.ids")
        self.retention = retention

    async def append(self, record: EventRecord) -> tuple[EventRecord, bool]:
        """Store ``record.event`` with the next sequence and the receive time.

        ``record``'s ``execution_id`` and ``task_id`` are kept; its sequence and receive
        time are the store's. The caller validates the event (id and source non-empty).

        Returns:
            The stored record, and False when ``(source, id)`` was already stored (the
            record is then the one stored first).

        """
        identity = _identity(record.event.source, record.event.id)
        keep = max(1, self.retention)

        def append(txn: Txn) -> tuple[EventRecord, bool]:
            existing = txn.get(identity, db=self._ids)
            if existing is not None:
                data = txn.get(existing, db=self._events)
                if data is not None:
                    return EventRecord.FromString(data), False
            stored = EventRecord()
            stored.CopyFrom(record)
            stored.sequence = _last_sequence(txn, self._events) + 1
            stored.receive_time.CopyFrom(now())
            key = _U64.pack(stored.sequence)
            txn.put(key, stored.SerializeToString(), db=self._events)
            txn.put(identity, key, db=self._ids)
            self._trim(txn, stored.sequence - keep)
            return stored, True

        return await self._engine.write(append)

    def _trim(self, txn: Txn, up_to: int) -> None:
        """Delete the events with a sequence of at most ``up_to``, oldest first."""
        if up_to < 1:
            return
        with txn.cursor(db=self._events) as cursor:
            positioned = cursor.first()
            while positioned and _U64.unpack(cursor.key())[0] <= up_to:
                old = EventRecord.FromString(cursor.value())
                txn.delete(_identity(old.event.source, old.event.id), db=self._ids)
                positioned = cursor.delete()

    async def read(
        self,
        after_sequence: int,
        limit: int,
        *,
        received_from_ns: int = 0,
        type: str = "",
        source: str = "",
        execution_id: str = "",
    ) -> tuple[list[EventRecord], int]:
        """Up to ``limit`` events after ``after_sequence`` matching the filters, in order.

        Args:
            after_sequence: Only events with a higher sequence.
            limit: At most this many events (at least 1).
            received_from_ns: Only events received at or after this time (Unix ns).
            type: Only this type (empty: any).
            source: Only this source (empty: any).
            execution_id: Only events emitted by this workflow execution (empty: any).

        Returns:
            The events, and the last sequence examined (``after_sequence`` when none was):
            pass it as ``after_sequence`` to continue.

        """
        limit = max(1, limit)
        # A bound on the events examined per call, so a rare filter costs bounded work.
        budget = max(limit, 1000)

        def read(txn: Txn) -> tuple[list[EventRecord], int]:
            found: list[EventRecord] = []
            last = max(after_sequence, 0)
            with txn.cursor(db=self._events) as cursor:
                positioned = cursor.set_range(_U64.pack(last + 1))
                examined = 0
                while positioned and len(found) < limit and examined < budget:
                    examined += 1
                    record = EventRecord.FromString(cursor.value())
                    last = record.sequence
                    if (
                        (not type or record.event.type == type)
                        and (not source or record.event.source == source)
                        and (not execution_id or record.execution_id == execution_id)
                        and record.receive_time.ToNanoseconds() >= received_from_ns
                    ):
                        found.append(record)
                    positioned = cursor.next()
            return found, last

        return await self._engine.read(read)

    async def last_sequence(self) -> int:
        """The sequence of the newest event (0 when there is none)."""
        return await self._engine.read(lambda txn: _last_sequence(txn, self._events))


def _last_sequence(txn: Txn, db: Database) -> int:
    with txn.cursor(db=db) as cursor:
        if cursor.last():
            return int(_U64.unpack(cursor.key())[0])
    return 0
