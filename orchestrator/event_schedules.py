"""Event-driven schedules: a workflow whose document has `schedule.on` starts on events.

One background task per orchestrator (:meth:`EventSchedules.run_forever`, started and
stopped with the orchestrator's other services) follows the CloudEvents stream
(``orchestrator/cloud_events.py``) in sequence order. Each event is fed to the `schedule.on`
strategy (:class:`polyfleet.dsl.triggers.EventTrigger`) of every stored workflow applied at or
before the event was received; a strategy that is met creates one execution of the workflow
through the same path as CreateWorkflowExecution, on behalf of the schedule (as a Temporal
Schedule's start does, ``orchestrator/schedules.py``): input ``{"events": [...]}`` (the
consumed events, in consumption order), label ``polyfleet.schedule=<workflow>``, actor
``schedule/<workflow>``, and a request_id derived from the workflow and the events' sequences.
A workflow whose schedule is paused (ScheduleService, ``Schedules.pause``) is skipped: the
events processed while it is paused start nothing, and its partial matches are dropped.

Durability: after each batch of events the position in the stream and the partial matches of
`all` strategies are written to the store (``store/cursors.py``, one commit). After a restart
the follower resumes from there: an event processed before the crash but after the last write
is processed again, and its execution, if it started one, is found by its request_id instead
of being created twice; an event published while the orchestrator was down is processed when
it is back (as long as the stream retains it).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2

import store
from orchestrator.auth.caller import calling_as
from orchestrator.cloud_events import MAX_WAIT_SECONDS, CloudEvents
from orchestrator.errors import InvalidArgumentError, WorkflowStartError
from orchestrator.paging import every_page
from orchestrator.schedules import event_schedule_pause, schedule_caller
from orchestrator.workflow_executions import WorkflowExecutions
from polyfleet import contract
from polyfleet.cloud_events import event_to_data
from polyfleet.dsl import InvalidDocumentError, load_document
from polyfleet.dsl.schedule import event_trigger_of
from polyfleet.dsl.triggers import EventTrigger
from polyfleet.quoting import quote
from polyfleet.v1 import workflow_execution_pb2, workflow_pb2

logger = logging.getLogger(__name__)

#: The store cursor holding the follower's position and partial matches.
CURSOR = "event-schedules"
#: Events read per batch (one cursor write each).
BATCH = 1000
#: Seconds before the follower retries after a failure (the store or Temporal unusable).
RETRY_SECONDS = 1.0
_MAX_READABLE_ID = 200


def trigger_request_id(workflow: str, sequences: list[int]) -> str:
    """The request_id of the execution ``workflow``'s `schedule.on` starts for these events.

    Deterministic: processing the same events again finds the same execution.
    """
    readable = f"schedule-on/{workflow}/" + "-".join(str(s) for s in sequences)
    if len(readable) <= _MAX_READABLE_ID:
        return readable
    digest = hashlib.sha256(readable.encode()).hexdigest()[:40]
    return f"schedule-on/{workflow}/{sequences[0]}-{digest}"


@dataclass(frozen=True)
class _Trigger:
    """A stored workflow's `schedule.on`."""

    trigger: EventTrigger
    # Events received before this (Unix ns: the workflow's last write) do not start it.
    since_ns: int
    # Identifies the strategy: partial matches of another one are dropped.
    key: str


def _trigger_of(definition: workflow_pb2.Workflow) -> _Trigger | None:
    try:
        strategy = event_trigger_of(load_document(definition.document))
    except (InvalidDocumentError, ValueError):
        return None  # stored documents were validated; one that no longer reads has none
    if strategy is None:
        return None
    key = hashlib.sha256(json.dumps(strategy, sort_keys=True, default=str).encode()).hexdigest()
    since = definition.update_time.ToNanoseconds() if definition.HasField("update_time") else 0
    return _Trigger(EventTrigger(strategy), since, key[:16])


class EventSchedules:
    """The follower of the event stream that starts the `schedule.on` workflows.

    Args:
        db: The store (workflows, the event stream, the cursor).
        events: The CloudEvents hub (``receive`` waits for new events).
        executions: Creates the executions, as CreateWorkflowExecution does.
    """

    def __init__(
        self, db: store.Store, events: CloudEvents, executions: WorkflowExecutions
    ) -> None:
        self._db = db
        self._events = events
        self._executions = executions
        # (name, update_time ns) → its trigger, so each document is parsed once.
        self._parsed: dict[tuple[str, int], _Trigger | None] = {}
        self.after = 0
        # workflow → {"key": strategy key, "state": the trigger's partial matches}
        self.pending: dict[str, dict[str, Any]] = {}

    async def load(self) -> None:
        """Read the position and partial matches; the first time, start after the newest event.

        The first position is written at once, so events published after it are never
        skipped, even across a restart before the first one.
        """
        data = await self._db.cursors.get(CURSOR)
        if data is None:
            self.after = await self._db.events.last_sequence()
            self.pending = {}
            await self._save()
            return
        saved = json.loads(data)
        self.after = int(saved["after"])
        self.pending = dict(saved.get("pending") or {})

    async def _save(self) -> None:
        data = json.dumps({"after": self.after, "pending": self.pending}, separators=(",", ":"))
        await self._db.cursors.put(CURSOR, data.encode())

    async def run_forever(self) -> None:
        """Follow the stream until cancelled; a failure is logged and the batch retried."""
        while True:
            try:
                await self.load()
                while True:
                    await self.step(MAX_WAIT_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Back to the last saved position: the executions already created are found
                # again by their request_id.
                logger.exception("event-driven schedules: processing events failed; retrying")
                await asyncio.sleep(RETRY_SECONDS)

    async def step(self, wait: float) -> int:
        """Process the next batch of events (waiting up to ``wait`` s for one); how many."""
        records, last = await self._events.receive(self.after, BATCH, wait)
        if not records:
            if last != self.after:
                self.after = last
                await self._save()
            return 0
        triggers = await self._triggers()
        # A workflow gone, paused or without `schedule.on` loses its partial matches.
        for name in list(self.pending):
            if name not in triggers:
                del self.pending[name]
        for record in records:
            await self._process(record, triggers)
        self.after = last
        await self._save()
        return len(records)

    async def _triggers(self) -> dict[str, _Trigger]:
        workflows = await every_page(
            lambda token: self._db.workflows.list(page_size=1000, page_token=token)
        )
        found: dict[str, _Trigger] = {}
        parsed: dict[tuple[str, int], _Trigger | None] = {}
        for definition in workflows:
            stamp = definition.update_time.ToNanoseconds()
            cache_key = (definition.name, stamp)
            if cache_key in self._parsed:
                trigger = self._parsed[cache_key]
            else:
                trigger = _trigger_of(definition)
            parsed[cache_key] = trigger
            if trigger is None:
                continue
            paused, _ = await event_schedule_pause(self._db, definition)
            if not paused:
                found[definition.name] = trigger
        self._parsed = parsed
        return found

    async def _process(self, record: Any, triggers: dict[str, _Trigger]) -> None:
        event = event_to_data(record.event)
        received = record.receive_time.ToNanoseconds()
        for name, trigger in sorted(triggers.items()):
            if received < trigger.since_ns:
                continue
            slot = self.pending.get(name)
            if slot is None or slot.get("key") != trigger.key:
                slot = {"key": trigger.key, "state": {}}
            consumed = trigger.trigger.feed(slot["state"], event, record.sequence)
            if slot["state"]:
                self.pending[name] = slot
            else:
                self.pending.pop(name, None)
            if consumed is not None:
                await self._start(name, consumed)

    async def _start(self, workflow: str, consumed: list[tuple[int, dict[str, Any]]]) -> None:
        sequences = [sequence for sequence, _ in consumed]
        request_id = trigger_request_id(workflow, sequences)
        workflow_input = struct_pb2.Struct()
        json_format.ParseDict({"events": [event for _, event in consumed]}, workflow_input)
        request = workflow_execution_pb2.CreateWorkflowExecutionRequest(
            execution=workflow_execution_pb2.WorkflowExecution(
                workflow=workflow,
                input=workflow_input,
                labels={contract.SCHEDULE_LABEL: workflow},
            ),
            request_id=request_id,
        )
        with calling_as(schedule_caller(workflow)):
            try:
                execution = await self._executions.create(request)
            except store.NotFoundError:
                logger.info("schedule.on of workflow %s: the workflow is gone", quote(workflow))
                return
            except InvalidArgumentError as err:
                # E.g. the events are larger than POLYFLEET_MAX_INPUT_BYTES: never retried.
                logger.warning(
                    "schedule.on of workflow %s could not start an execution for events %s: %s",
                    quote(workflow),
                    sequences,
                    err,
                )
                return
            except WorkflowStartError as err:
                # Persisted FAILED with the reason: visible on the execution.
                logger.warning("schedule.on of workflow %s: %s", quote(workflow), err)
                return
        logger.info(
            "schedule.on of workflow %s created %s for events %s",
            quote(workflow),
            execution.id,
            sequences,
            extra={"execution_id": execution.id},
        )
