"""`emit` and `listen` of a workflow execution, through RunnerService.

`emit` publishes with ``EmitEvent``: the orchestrator derives a missing event id from the
execution, task and attempt, so another activity attempt that repeats the task publishes
the same event once. `listen` reads with ``ReceiveEvents``, a long poll of at most the
engine's wait (a few seconds): the activity keeps heartbeating meanwhile
(:func:`runner.heartbeat.heartbeating`), so a long listen never meets the heartbeat timeout.
"""

from __future__ import annotations

from typing import Any

from polyfleet.cloud_events import EventFormatError, event_from_data, event_to_data
from polyfleet.dsl import RUNTIME, EventBatch, WorkflowError
from runner.runner_client import RunnerClient


class WorkflowEvents:
    """The events of one workflow execution's attempt."""

    def __init__(self, client: RunnerClient, execution_id: str) -> None:
        self._client = client
        self._execution_id = execution_id

    async def emit(self, event: dict[str, Any], task_id: str, attempt: int) -> dict[str, Any]:
        """Publish ``event`` for the `emit` task ``task_id``; return it as stored."""
        try:
            message = event_from_data(event)
        except EventFormatError as err:
            raise WorkflowError(
                RUNTIME, 400, title="Invalid event", detail=str(err), instance=task_id
            ) from None
        response = await self._client.emit_event(self._execution_id, task_id, attempt, message)
        return event_to_data(response.record.event)

    async def receive(self, after: int, wait: float) -> EventBatch:
        """The events after sequence ``after`` this execution may consume."""
        response = await self._client.receive_events(self._execution_id, after, wait)
        events = [event_to_data(record.event) for record in response.events]
        return EventBatch(events, response.last_sequence)
