"""The append-only, per-execution event log and its report-ID deduplication records."""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyfleet.v1 import common_pb2
from store import _keys
from store.errors import StoreError

if TYPE_CHECKING:
    from store._engine import Engine, Txn

ExecutionEvent = common_pb2.ExecutionEvent


class EventLog:
    """Events keyed by ``execution_id + NUL + big-endian sequence``, so a cursor reads in order.

    A second database maps ``execution_id + NUL + report_id`` to the sequence of the event the
    report produced, so a retried report finds its original event.
    """

    def __init__(self, engine: Engine, name: str) -> None:
        """Open the log databases named after ``name``."""
        self._events = engine.database(f"{name}.events")
        self._reports = engine.database(f"{name}.reports")

    def find_report(self, txn: Txn, execution_id: str, report_key: bytes) -> ExecutionEvent | None:
        """Return the event a report produced, or None if it was not applied.

        Args:
            txn: The transaction.
            execution_id: The execution.
            report_key: The report's record key (``_keys.report_key``).

        """
        sequence = txn.get(report_key, db=self._reports)
        if sequence is None:
            return None
        data = txn.get(_keys.event_key(execution_id, _keys.sequence_of(sequence)), db=self._events)
        if data is None:
            report_id = report_key.partition(b"\x00")[2].decode()
            raise StoreError(f"event log of {execution_id!r} lost the event of {report_id!r}")
        return ExecutionEvent.FromString(data)

    def append(self, txn: Txn, event: ExecutionEvent, report_key: bytes | None) -> None:
        """Write an event and, when ``report_key`` is given, its report record."""
        key = _keys.event_key(event.execution_id, event.sequence)
        if not txn.put(key, event.SerializeToString(), overwrite=False, db=self._events):
            # Sequences come from the execution's last_sequence in the same transaction, so a
            # taken slot means the two disagree; overwriting would rewrite history.
            raise StoreError(f"event {event.sequence} of {event.execution_id!r} already exists")
        if report_key is not None:
            txn.put(report_key, _keys.encode_sequence(event.sequence), db=self._reports)

    def read(
        self, txn: Txn, execution_id: str, after_sequence: int, limit: int
    ) -> list[ExecutionEvent]:
        """Return up to ``limit`` events with a sequence above ``after_sequence``, in order."""
        prefix = _keys.log_prefix(execution_id)
        events: list[ExecutionEvent] = []
        with txn.cursor(db=self._events) as cursor:
            positioned = cursor.set_range(_keys.event_key(execution_id, max(after_sequence, 0) + 1))
            while positioned and len(events) < limit and cursor.key().startswith(prefix):
                events.append(ExecutionEvent.FromString(cursor.value()))
                positioned = cursor.next()
        return events
