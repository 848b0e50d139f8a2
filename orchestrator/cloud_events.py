"""CloudEvents: publish (EventService, a workflow's `emit`), list, and wait for new ones.

Events live in one global stream in the store (:mod:`store.events`, gap-free sequence,
deduplicated by ``(source, id)``, bounded retention). After each append the hub wakes every
waiter; waiters always re-read the stream from their last sequence, so a missed wake-up loses
nothing. :meth:`CloudEvents.subscribe` is the async iterator other parts of the orchestrator
use to follow new events (e.g. schedules started on an event).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator

import store
from orchestrator.errors import InvalidArgumentError
from orchestrator.events import EventHub
from polyfleet.v1 import common_pb2, event_pb2

EventRecord = event_pb2.EventRecord
CloudEvent = event_pb2.CloudEvent

SPEC_VERSION = "1.0"
DEFAULT_CONTENT_TYPE = "application/json"
#: Longest wait of one ReceiveEvents call; the runner asks again.
MAX_WAIT_SECONDS = 30.0
_DEFAULT_PAGE = 100
_MAX_PAGE = 1000
_MAX_ATTRIBUTE_CHARS = 256
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
# Context attributes of CloudEvents 1.0 that cannot be extensions.
_RESERVED = frozenset(
    {"id", "source", "type", "specversion", "time", "datacontenttype", "subject", "dataschema"}
    | {"data", "data_base64"}
)
_STREAM = "cloudevents"


def execution_source(execution_id: str) -> str:
    """The default `source` of the events a workflow execution emits."""
    return f"/polyfleet/workflow-executions/{execution_id}"


def emitted_event_id(execution_id: str, task_id: str, attempt: int) -> str:
    """The id of the event an `emit` task run publishes: the same for every activity retry."""
    digest = hashlib.sha256(f"{execution_id}\0{task_id}\0{attempt}".encode()).hexdigest()
    return f"emit-{digest[:32]}"


def validate_event(event: CloudEvent, field: str = "event") -> None:
    """Check the required CloudEvents 1.0 attributes and the extension names.

    Raises:
        InvalidArgumentError: Naming the first invalid attribute, e.g. ``event.type``.

    """
    for name in ("id", "source", "type"):
        value = getattr(event, name)
        if not value:
            raise InvalidArgumentError(f"{field}.{name}", "is required by CloudEvents 1.0")
        if len(value) > _MAX_ATTRIBUTE_CHARS:
            raise InvalidArgumentError(
                f"{field}.{name}", f"must be at most {_MAX_ATTRIBUTE_CHARS} characters"
            )
    if event.specversion not in ("", SPEC_VERSION):
        raise InvalidArgumentError(
            f"{field}.specversion", f"must be {SPEC_VERSION!r} (the only version supported)"
        )
    for name in ("subject", "dataschema", "datacontenttype"):
        if len(getattr(event, name)) > _MAX_ATTRIBUTE_CHARS:
            raise InvalidArgumentError(
                f"{field}.{name}", f"must be at most {_MAX_ATTRIBUTE_CHARS} characters"
            )
    if event.HasField("time") and not 0 <= event.time.nanos < 1_000_000_000:
        raise InvalidArgumentError(f"{field}.time.nanos", "is outside 0..999999999")
    for key, value in event.extensions.items():
        if not _EXTENSION_NAME.match(key) or key in _RESERVED:
            raise InvalidArgumentError(
                f"{field}.extensions[{key}]",
                "must be 1 to 20 lowercase letters or digits, and not a context attribute",
            )
        if len(value) > _MAX_ATTRIBUTE_CHARS:
            raise InvalidArgumentError(
                f"{field}.extensions[{key}]", f"must be at most {_MAX_ATTRIBUTE_CHARS} characters"
            )


def _normalized(event: CloudEvent) -> CloudEvent:
    copy = CloudEvent()
    copy.CopyFrom(event)
    copy.specversion = SPEC_VERSION
    copy.datacontenttype = copy.datacontenttype or DEFAULT_CONTENT_TYPE
    return copy


class CloudEvents:
    """Publishing, listing and waiting for events; one per orchestrator."""

    def __init__(self, db: store.Store, hub: EventHub | None = None) -> None:
        self._db = db
        self._hub = hub or EventHub()

    async def publish(
        self, event: CloudEvent, *, execution_id: str = "", task_id: str = ""
    ) -> tuple[EventRecord, bool]:
        """Validate and store ``event``, then wake the waiters.

        Returns:
            The stored record, and False when ``(source, id)`` was stored before.

        Raises:
            InvalidArgumentError: An attribute is missing or malformed (naming it).

        """
        validate_event(event)
        normalized = _normalized(event)
        if not normalized.HasField("time"):
            normalized.time.GetCurrentTime()
        record = EventRecord(event=normalized, execution_id=execution_id, task_id=task_id)
        stored, published = await self._db.events.append(record)
        if published:
            self._hub.publish(_STREAM)
        return stored, published

    async def emit(self, request: event_pb2.EmitEventRequest) -> tuple[EventRecord, bool]:
        """Publish the event of an `emit` task, with defaults derived from the execution."""
        if not request.task_id:
            raise InvalidArgumentError("task_id", "must not be empty")
        event = CloudEvent()
        event.CopyFrom(request.event)
        event.source = event.source or execution_source(request.execution_id)
        event.id = event.id or emitted_event_id(
            request.execution_id, request.task_id, request.attempt
        )
        return await self.publish(event, execution_id=request.execution_id, task_id=request.task_id)

    async def list_events(
        self, request: event_pb2.ListEventsRequest
    ) -> event_pb2.ListEventsResponse:
        """A page of events in sequence order (ListEvents)."""
        if request.after_sequence < 0:
            raise InvalidArgumentError("after_sequence", "must not be negative")
        size = request.page_size if request.page_size > 0 else _DEFAULT_PAGE
        events, last = await self._db.events.read(
            request.after_sequence,
            min(size, _MAX_PAGE),
            type=request.type,
            source=request.source,
            execution_id=request.execution_id,
        )
        return event_pb2.ListEventsResponse(events=events, last_sequence=last)

    async def receive(
        self, after_sequence: int, limit: int, wait: float, *, received_from_ns: int = 0
    ) -> tuple[list[EventRecord], int]:
        """Events after ``after_sequence``, waiting up to ``wait`` seconds for one.

        Only events received at or after ``received_from_ns`` (Unix ns) are returned.

        Returns:
            The events (possibly none) and the last sequence examined.

        """
        limit = min(limit if limit > 0 else _DEFAULT_PAGE, _MAX_PAGE)
        deadline = asyncio.get_running_loop().time() + max(0.0, min(wait, MAX_WAIT_SECONDS))
        last = after_sequence
        while True:
            # Take the signal before reading: an append in between still wakes us.
            signal = self._hub.signal(_STREAM)
            before = last
            events, last = await self._db.events.read(
                last, limit, received_from_ns=received_from_ns
            )
            if events:
                return events, last
            if last != before:
                continue  # only events before the cut so far: read on without waiting
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return [], last
            try:
                async with asyncio.timeout(left):
                    await signal.wait()
            except TimeoutError:
                return [], last

    async def receive_for(
        self, request: event_pb2.ReceiveEventsRequest
    ) -> event_pb2.ReceiveEventsResponse:
        """ReceiveEvents: what a `listen` task of ``request.execution_id`` may consume.

        The cut is the execution's creation: an event stored before it is never returned,
        every one stored after it is, whenever the listen task starts.
        """
        if request.after_sequence < 0:
            raise InvalidArgumentError("after_sequence", "must not be negative")
        if request.wait_millis < 0:
            raise InvalidArgumentError("wait_millis", "must not be negative")
        execution = await self._db.workflow_executions.get(
            request.execution_id, common_pb2.EXECUTION_VIEW_BASIC
        )
        events, last = await self.receive(
            request.after_sequence,
            request.max_events,
            request.wait_millis / 1000,
            received_from_ns=execution.create_time.ToNanoseconds(),
        )
        return event_pb2.ReceiveEventsResponse(events=events, last_sequence=last)

    async def subscribe(self, after_sequence: int = 0) -> AsyncIterator[EventRecord]:
        """Every event after ``after_sequence``, then each new one as it is published.

        Never ends by itself; cancel the consumer to stop. ``await
        db.events.last_sequence()`` gives the sequence to start from for new events only.
        """
        last = after_sequence
        while True:
            events, last = await self.receive(last, _MAX_PAGE, MAX_WAIT_SECONDS)
            for record in events:
                yield record
