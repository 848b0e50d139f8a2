"""Agent and workflow executions, with their event logs."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from polyfleet import contract
from polyfleet.v1 import agent_execution_pb2, common_pb2, workflow_execution_pb2
from store import _keys
from store._collection import Collection, FieldIndex, FilterValue
from store._eventlog import EventLog
from store._resource import Execution, stamp_replaced
from store.errors import RequestKeyConflictError, StoreError
from store.ids import MAX_ID_BYTES, new_id
from store.views import FULL, ExecutionView, apply_view

if TYPE_CHECKING:
    from store._engine import Engine, Txn, WriteStep

E = TypeVar("E", bound=Execution)
ExecutionEvent = common_pb2.ExecutionEvent
ExecutionUpdate = common_pb2.ExecutionUpdate
DEFAULT_EVENT_LIMIT = 1000


@dataclass(frozen=True)
class FirstEvent(Generic[E]):
    """Event 1 of a new execution's log, written in the transaction that creates it.

    Attributes:
        update: The delta, recorded in the event as given.
        merge: Applies the delta to the new execution (as :meth:`ExecutionRepository.
            apply_report`'s ``merge``); it runs in the writer thread, possibly more than once.
        source: Who produced it, e.g. ``"api"``.
        report_id: Its report ID, so a later report with the same ID is not applied again.

    """

    update: ExecutionUpdate
    merge: Callable[[E, ExecutionUpdate], None]
    source: str
    report_id: str = ""


class ExecutionRepository(Generic[E]):
    """Executions of one kind, their List indexes, event logs and request keys.

    List serves one filter from its index and checks any further filters on each loaded
    execution; the index used is the first of the repository's indexes that the filters name,
    so put the most selective index first.

    Request keys (of :meth:`create_once`) belong to the repository: the same key names
    different requests in the agent and the workflow execution repositories.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        kind: str,
        factory: type[E],
        id_prefix: str,
        db_name: str,
        indexes: Sequence[FieldIndex[E]],
    ) -> None:
        """Open the repository's databases.

        Args:
            engine: The store's engine.
            kind: Resource kind used in errors, e.g. ``"agent execution"``.
            factory: The protobuf message class.
            id_prefix: Prefix of generated IDs, e.g. ``"aex"``.
            db_name: Name of the primary LMDB database; the others derive their names from it.
            indexes: Filterable fields, most selective first.

        """
        self._engine = engine
        self._id_prefix = id_prefix
        self._items = Collection(engine, kind, factory, db_name, indexes)
        self._log = EventLog(engine, db_name)
        self._requests = engine.database(f"{db_name}.requests")

    async def create(
        self, execution: E, first: FirstEvent[E] | None = None, then: WriteStep | None = None
    ) -> E:
        """Store a new execution with version 1, as given (its phase is set by the caller).

        Args:
            execution: The execution; its ID is generated when empty. It is not modified.
            first: When set, event 1 of its log, merged and appended in the same
                transaction: the execution never exists without it. If its ``merge``
                raises, nothing is written.
            then: Another write committed with the execution (e.g. its new session,
                ``ThreadRepository.for_new_session``); if it raises, nothing is written.

        Returns:
            The stored execution (with ``first`` merged).

        Raises:
            AlreadyExistsError: The preset ID is taken.

        """
        msg = self._items.copy(execution)
        if not msg.id:
            msg.id = new_id(self._id_prefix)
        return await self._engine.write(lambda txn: self._add(txn, msg, first, then))

    async def create_once(
        self,
        execution: E,
        request_key: str,
        fingerprint: bytes,
        first: FirstEvent[E] | None = None,
        then: WriteStep | None = None,
    ) -> tuple[E, bool]:
        """Create the execution unless this request key already created one.

        In one write transaction: if ``request_key`` was used before, the execution it created
        is returned as currently stored (it may have been updated since); otherwise the
        execution (and its ``first`` event) is created exactly like :meth:`create` and the
        key is recorded with its ID and ``fingerprint``. Concurrent calls with one key
        therefore create one execution and all return it, and a retry never sees the
        execution without its first event. Request keys are kept forever.

        Args:
            execution: The execution; its ID is generated when empty. It is not modified.
            request_key: The caller's idempotency key, at most 256 bytes.
            fingerprint: Identifies the request's content, e.g. a hash of its fields; a retry
                must present the same bytes.
            first: Event 1 of a new execution's log, as for :meth:`create`.
            then: As for :meth:`create`; it runs only when the execution is created now.

        Returns:
            The stored execution, and whether it was created now.

        Raises:
            InvalidArgumentError: ``request_key`` is empty or longer than 256 bytes.
            RequestKeyConflictError: The key was used for a request with another fingerprint.
            AlreadyExistsError: The key is new and the execution's preset ID is taken.

        """
        key = _keys.request_key(request_key)
        wanted = bytes(fingerprint)
        msg = self._items.copy(execution)
        if not msg.id:
            msg.id = new_id(self._id_prefix)

        def create_once(txn: Txn) -> tuple[E, bool]:
            recorded = txn.get(key, db=self._requests)
            if recorded is not None:
                execution_id, recorded_fingerprint = _keys.decode_request(recorded)
                if recorded_fingerprint != wanted:
                    raise RequestKeyConflictError(self._items.kind, request_key, execution_id)
                existing = self._items.load(txn, execution_id)
                if existing is None:
                    raise StoreError(
                        f"request key {request_key!r} names {execution_id!r}, which is gone"
                    )
                return existing, False
            created = self._add(txn, msg, first, then)
            txn.put(key, _keys.encode_request(created.id, wanted), db=self._requests)
            return created, True

        return await self._engine.write(create_once)

    async def get(self, execution_id: str, view: ExecutionView.ValueType = FULL) -> E:
        """Return the execution, trimmed to ``view`` (see :func:`store.views.apply_view`).

        Raises:
            NotFoundError: There is no such execution.

        """
        return await self._engine.lookup(
            lambda txn: apply_view(self._items.require(txn, execution_id), view)
        )

    async def list(
        self,
        *,
        filters: Mapping[str, FilterValue] | None = None,
        page_size: int = 0,
        page_token: str = "",
        created_after: int = 0,
        created_before: int = 0,
        labels: Mapping[str, str] | None = None,
        view: ExecutionView.ValueType = FULL,
        max_bytes: int = 0,
    ) -> tuple[list[E], str]:
        """Return one page of executions, newest first, and the next page token.

        Only one filter is served by an index; the others are checked on each execution the
        index yields, so a rare combination of filters may read many executions per page. The
        creation-time range bounds the scan of that index (keys are ordered by creation time):
        it starts at ``created_before`` and stops at ``created_after``. Labels are not indexed:
        they are checked on each execution of the scanned range.

        Args:
            filters: Field name to required value, e.g. ``{"agent": "x"}`` or
                ``{"phase": int(ExecutionPhase.EXECUTION_PHASE_RUNNING)}``. Empty and zero
                values are ignored, like unset request fields.
            page_size: At most this many; non-positive means 50, and at most 1000.
            page_token: Empty for the first page, else a token returned by the previous call
                with the same filters, times and labels.
            created_after: Only executions created at or after this time, in Unix
                nanoseconds; 0 (or less) means unbounded.
            created_before: Only executions created before this time, in Unix nanoseconds;
                0 means unbounded (a negative time precedes every execution).
            labels: Only executions carrying every one of these labels with exactly this
                value; empty or None means any labels.
            view: How much of each execution to return (see :func:`store.views.apply_view`).
            max_bytes: Byte budget of the page: it ends before the execution (as trimmed to
                ``view``) that would take it over, but holds at least one; non-positive
                means unbounded.

        Returns:
            The executions and the next page token, empty on the last page.

        Raises:
            InvalidArgumentError: A filter names a field that has no index.
            InvalidPageTokenError: The token did not come from this list with these filters
                and times.

        """
        wanted = dict(filters or {})
        match = _has_labels(dict(labels)) if labels else None
        return await self._engine.read(
            lambda txn: self._items.page(
                txn,
                wanted,
                page_size,
                page_token,
                created_after=created_after,
                created_before=created_before,
                match=match,
                project=lambda execution: apply_view(execution, view),
                max_bytes=max_bytes,
            )
        )

    async def count(self, field: str, value: FilterValue) -> int:
        """Return how many executions have ``value`` in the indexed ``field``, e.g. a phase.

        Reads only that value's index keys: cheap enough for a status view.

        Raises:
            InvalidArgumentError: ``field`` has no index.

        """
        return await self._engine.read(lambda txn: self._items.count(txn, field, value))

    async def update(
        self,
        execution_id: str,
        mutate: Callable[[E], None],
        expected_version: int | None = None,
    ) -> E:
        """Apply ``mutate`` to the stored execution in one write transaction.

        ``mutate`` runs in the store's writer thread and may run more than once (when the map
        grows), each time on a fresh copy; it must only change the execution it is given.
        Changes to the ID, creation time and ``status.last_sequence`` (owned by the event log)
        are ignored; the version is incremented and the indexes follow the new values.

        Raises:
            NotFoundError: There is no such execution.
            ConflictError: The stored version is not ``expected_version``.

        """

        def mutate_keeping_log(execution: E) -> None:
            last_sequence = execution.status.last_sequence
            mutate(execution)
            execution.status.last_sequence = last_sequence

        return await self._engine.write(
            lambda txn: self._items.modify(txn, execution_id, mutate_keeping_log, expected_version)
        )

    async def apply_report(
        self,
        execution_id: str,
        report_id: str,
        source: str,
        update: ExecutionUpdate,
        merge: Callable[[E, ExecutionUpdate], None],
        then: WriteStep | None = None,
    ) -> tuple[E, ExecutionEvent, bool]:
        """Merge a report into the execution and append it to the event log, atomically.

        In one write transaction: a report already applied to this execution returns the
        current execution and its original event unchanged; otherwise ``merge`` updates the
        execution, the next sequence number is assigned, and the event, the report record and
        the execution are written together. ``then`` runs next in the same transaction,
        whether the report was applied now or before (e.g. the thread append that rides on
        the report: one commit for both). If ``merge`` or ``then`` raises, nothing is
        written.

        Args:
            execution_id: The execution.
            report_id: Identifies the report; empty means no deduplication.
            source: Who produced the report, e.g. ``"runner"``.
            update: The delta, recorded in the event as ``merge`` leaves its copy (a
                terminal merge adds the items it closes). It is not modified.
            merge: Applies the delta to the execution it is given. It runs in the store's
                writer thread and may run more than once, each time on a fresh copy.
            then: Another write of the same transaction, e.g.
                ``ThreadRepository.appending``; like ``merge``, it may run more than once.

        Returns:
            The execution as stored, the report's event, and whether it was applied now.

        Raises:
            NotFoundError: There is no such execution.
            InvalidArgumentError: ``report_id`` is too long.

        """
        delta = ExecutionUpdate()
        delta.CopyFrom(update)
        report_key = _keys.report_key(execution_id, report_id) if report_id else None

        def apply(txn: Txn) -> tuple[E, ExecutionEvent, bool]:
            stored = self._items.require(txn, execution_id)
            previous = None
            if report_key is not None:
                previous = self._log.find_report(txn, execution_id, report_key)
            if previous is not None:
                outcome = (stored, previous, False)
            else:
                updated, event = self._append(
                    txn, stored, report_id, report_key, source, delta, merge
                )
                outcome = (updated, event, True)
            if then is not None:
                then(txn)
            return outcome

        return await self._engine.write(apply)

    def _add(
        self, txn: Txn, msg: E, first: FirstEvent[E] | None, then: WriteStep | None = None
    ) -> E:
        """Insert a copy of ``msg`` with version 1 and, when given, its first event and ``then``."""
        created = self._items.add(txn, self._items.copy(msg))
        if then is not None:
            then(txn)
        if first is None:
            return created
        report_key = _keys.report_key(created.id, first.report_id) if first.report_id else None
        updated, _ = self._append(
            txn, created, first.report_id, report_key, first.source, first.update, first.merge
        )
        return updated

    def _append(
        self,
        txn: Txn,
        stored: E,
        report_id: str,
        report_key: bytes | None,
        source: str,
        delta: ExecutionUpdate,
        merge: Callable[[E, ExecutionUpdate], None],
    ) -> tuple[E, ExecutionEvent]:
        """Merge a copy of ``delta`` into ``stored`` and log it as the next event, in ``txn``."""
        updated = self._items.copy(stored)
        event = ExecutionEvent(execution_id=stored.id, report_id=report_id, source=source)
        # The event logs the delta as the merge leaves its copy: what a merge adds (the
        # items a terminal report closes, see orchestrator.status) reaches watchers too.
        change = event.update
        change.CopyFrom(delta)
        merge(updated, change)
        stamp_replaced(stored, updated)
        sequence = stored.status.last_sequence + 1
        updated.status.last_sequence = sequence
        event.sequence = sequence
        event.create_time.CopyFrom(updated.update_time)
        event.phase = updated.status.phase
        self._log.append(txn, event, report_key)
        self._items.replace(txn, stored, updated)
        return updated, event

    async def events(
        self, execution_id: str, after_sequence: int = 0, limit: int = DEFAULT_EVENT_LIMIT
    ) -> builtins.list[ExecutionEvent]:
        """Return the execution's events with a sequence above ``after_sequence``, in order.

        Args:
            execution_id: The execution; an unknown one has no events.
            after_sequence: Return only later events; 0 returns the log from its start.
            limit: At most this many; non-positive means the default of 1000.

        """
        if not execution_id or len(execution_id.encode()) > MAX_ID_BYTES:
            return []  # no such execution can exist
        count = limit if limit > 0 else DEFAULT_EVENT_LIMIT
        return await self._engine.read(
            lambda txn: self._log.read(txn, execution_id, after_sequence, count)
        )


class AgentExecutionRepository(ExecutionRepository[agent_execution_pb2.AgentExecution]):
    """Agent executions (``aex-…``), filterable by ``session_id``, ``agent`` and ``phase``."""

    def __init__(self, engine: Engine) -> None:
        """Open the agent execution databases of ``engine``."""
        super().__init__(
            engine,
            kind="agent execution",
            factory=agent_execution_pb2.AgentExecution,
            id_prefix=contract.AGENT_EXECUTION_ID_PREFIX,
            db_name="agent_executions",
            indexes=[
                FieldIndex("session_id", _session_id),
                FieldIndex("agent", _agent),
                FieldIndex("phase", _phase),
            ],
        )


class WorkflowExecutionRepository(ExecutionRepository[workflow_execution_pb2.WorkflowExecution]):
    """Workflow executions (``wex-…``), filterable by ``workflow`` and ``phase``."""

    def __init__(self, engine: Engine) -> None:
        """Open the workflow execution databases of ``engine``."""
        super().__init__(
            engine,
            kind="workflow execution",
            factory=workflow_execution_pb2.WorkflowExecution,
            id_prefix=contract.WORKFLOW_EXECUTION_ID_PREFIX,
            db_name="workflow_executions",
            indexes=[FieldIndex("workflow", _workflow), FieldIndex("phase", _phase)],
        )


def _has_labels(wanted: Mapping[str, str]) -> Callable[[Execution], bool]:
    def has_labels(execution: Execution) -> bool:
        carried = execution.labels
        return all(carried.get(key) == value for key, value in wanted.items())

    return has_labels


def _session_id(execution: agent_execution_pb2.AgentExecution) -> str:
    return execution.session_id


def _agent(execution: agent_execution_pb2.AgentExecution) -> str:
    return execution.agent


def _workflow(execution: workflow_execution_pb2.WorkflowExecution) -> str:
    return execution.workflow


def _phase(execution: Execution) -> int:
    return int(execution.status.phase)
