"""The orchestrator's only activity: the local UpdateStatus."""

from __future__ import annotations

import logging

from temporalio import activity

from orchestrator.executions import ExecutionRegistry, ReportResult
from orchestrator.status import IllegalTransitionError
from polyfleet import contract
from polyfleet.v1 import activities_pb2

logger = logging.getLogger(__name__)


class StatusActivities:
    """Activities that run inside the orchestrator process, next to the store."""

    def __init__(self, executions: ExecutionRegistry) -> None:
        self._executions = executions

    @activity.defn(name=contract.UPDATE_STATUS)
    async def update_status(
        self, params: activities_pb2.UpdateStatusInput
    ) -> activities_pb2.UpdateStatusOutput:
        """Persist a status change decided by a workflow (run as a local activity).

        A change the lifecycle refuses (the execution is already terminal) is logged
        and acknowledged rather than retried: retrying cannot make it legal.
        """
        info = activity.info()
        service = self._executions.for_id(params.execution_id)
        try:
            result = await service.report(
                params.execution_id, params.report_id, "orchestrator", params.update
            )
        except IllegalTransitionError as err:
            logger.warning(
                "UpdateStatus not applied: %s",
                err,
                extra={
                    "execution_id": params.execution_id,
                    "workflow_id": info.workflow_id,
                    "run_id": info.workflow_run_id,
                },
            )
            current = await service.get(params.execution_id)
            result = ReportResult(execution=current, event=None, applied=False)
        return result.as_message(activities_pb2.UpdateStatusOutput)
