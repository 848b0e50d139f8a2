"""The reconciler: no execution stays PENDING or RUNNING while Temporal says otherwise.

It runs once when the orchestrator starts (before the API serves, so no Create is in
progress) and then periodically. It repairs three kinds of drift:

- PENDING, workflow never started (the process died between persisting and starting):
  started, or FAILED with a reason once older than the start grace period;
- PENDING/RUNNING, workflow closed (its final local UpdateStatus never ran): the outcome
  Temporal recorded is persisted;
- PENDING/RUNNING, workflow gone: FAILED with a reason.
It also starts queued executions whose session has nothing running (the queue survives
restarts because it lives in the store).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from orchestrator.executions import Executions, system_message
from orchestrator.status import IllegalTransitionError
from polyfleet.config import ReconcilerSettings
from polyfleet.telemetry.metrics import RECONCILER_REPAIRS
from polyfleet.v1 import common_pb2

logger = logging.getLogger(__name__)

_CLOSED = {
    WorkflowExecutionStatus.COMPLETED: (common_pb2.EXECUTION_PHASE_COMPLETED, ""),
    WorkflowExecutionStatus.CANCELED: (
        common_pb2.EXECUTION_PHASE_CANCELLED,
        "its workflow was cancelled",
    ),
    WorkflowExecutionStatus.TERMINATED: (
        common_pb2.EXECUTION_PHASE_FAILED,
        "its workflow was terminated",
    ),
    WorkflowExecutionStatus.TIMED_OUT: (
        common_pb2.EXECUTION_PHASE_FAILED,
        "its workflow timed out",
    ),
    WorkflowExecutionStatus.FAILED: (common_pb2.EXECUTION_PHASE_FAILED, "its workflow failed"),
}


class Reconciler:
    """Repairs executions whose stored phase disagrees with their Temporal workflow."""

    def __init__(
        self,
        temporal: Client,
        services: list[Executions[Any, Any]],
        settings: ReconcilerSettings,
    ) -> None:
        self._temporal = temporal
        self._services = services
        self._settings = settings
        self.totals: Counter[str] = Counter()

    async def run_forever(self) -> None:
        """Reconcile every ``interval`` of the settings until cancelled."""
        while True:
            await asyncio.sleep(self._settings.interval.total_seconds())
            try:
                await self.reconcile(startup=False)
            except Exception:
                logger.exception("reconciler pass failed")

    async def reconcile(self, *, startup: bool) -> Counter[str]:
        """Run one pass; return how many executions it repaired, by outcome."""
        counts: Counter[str] = Counter()
        for service in self._services:
            for phase in (common_pb2.EXECUTION_PHASE_PENDING, common_pb2.EXECUTION_PHASE_RUNNING):
                for execution in await service.list_all({"phase": phase}):
                    outcome = await self._check(service, execution, startup=startup)
                    if outcome:
                        counts[outcome] += 1
                        RECONCILER_REPAIRS.add(1, outcome=outcome)
        self.totals.update(counts)
        if counts or startup:
            logger.info(
                "reconciler %s pass repaired %d executions: %s",
                "startup" if startup else "periodic",
                sum(counts.values()),
                dict(counts) or "nothing to repair",
            )
        return counts

    async def _check(self, service: Executions[Any, Any], execution: Any, *, startup: bool) -> str:
        age = time.time() - execution.create_time.ToNanoseconds() / 1e9
        if not startup and age < self._settings.min_age.total_seconds():
            return ""  # a Create may still be starting its workflow
        if execution.status.phase == common_pb2.EXECUTION_PHASE_PENDING:
            released = await service.release_if_queued(execution)
            if released is not None:
                return "dequeued" if released else ""
        try:
            description = await self._temporal.get_workflow_handle(execution.workflow_id).describe()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            return await self._missing(service, execution, age)
        if description.status in (None, WorkflowExecutionStatus.RUNNING):
            return ""
        return await self._closed(service, execution, description.status, description.run_id)

    async def _missing(self, service: Executions[Any, Any], execution: Any, age: float) -> str:
        pending = execution.status.phase == common_pb2.EXECUTION_PHASE_PENDING
        if pending and age < self._settings.start_grace.total_seconds():
            logger.info("starting a workflow that was never started", extra=_ids(execution))
            with contextlib.suppress(Exception):  # a failed start is persisted FAILED
                await service.start_workflow(execution)
            return "started"
        reason = (
            "its workflow was never started and the start grace period passed"
            if pending
            else "its workflow no longer exists in Temporal"
        )
        return await self._persist(
            service, execution, "reconcile/missing", common_pb2.EXECUTION_PHASE_FAILED, reason
        )

    async def _closed(
        self,
        service: Executions[Any, Any],
        execution: Any,
        status: WorkflowExecutionStatus,
        run_id: str | None,
    ) -> str:
        phase, reason = _CLOSED.get(
            status, (common_pb2.EXECUTION_PHASE_FAILED, f"its workflow closed as {status.name}")
        )
        if status == WorkflowExecutionStatus.FAILED:
            reason = await self._failure(execution.workflow_id) or reason
        return await self._persist(service, execution, f"reconcile/{run_id}", phase, reason)

    async def _failure(self, workflow_id: str) -> str:
        try:
            await self._temporal.get_workflow_handle(workflow_id).result()
        except WorkflowFailureError as err:
            cause = err.cause
            return f"its workflow failed: {cause}" if cause else ""
        except Exception:  # noqa: BLE001 - the status is what matters; the message is a bonus
            return ""
        return ""

    async def _persist(
        self,
        service: Executions[Any, Any],
        execution: Any,
        report_id: str,
        phase: common_pb2.ExecutionPhase.ValueType,
        reason: str,
    ) -> str:
        update = common_pb2.ExecutionUpdate(phase=phase, reason=reason or "reconciled")
        if phase == common_pb2.EXECUTION_PHASE_FAILED:
            update.error.CopyFrom(
                common_pb2.ExecutionError(type="Reconciled", message=reason, step="Reconciler")
            )
            update.messages.append(
                system_message(f"{execution.id}/reconciled", f"Execution failed: {reason}.")
            )
        try:
            await service.report(execution.id, report_id, "reconciler", update)
        except IllegalTransitionError:
            return ""  # it reached a terminal phase meanwhile
        name = common_pb2.ExecutionPhase.Name(phase).removeprefix("EXECUTION_PHASE_").lower()
        logger.warning("reconciled to %s: %s", name, reason, extra=_ids(execution))
        return name


def _ids(execution: Any) -> dict[str, str]:
    return {"execution_id": execution.id, "workflow_id": execution.workflow_id}
