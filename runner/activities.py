"""The runner activities: EnsureThread, ExecuteGraphton, ExecuteWorkflow."""

from __future__ import annotations

import logging

from temporalio import activity
from temporalio.exceptions import ApplicationError

from polyfleet import contract
from polyfleet.config import RunnerSettings
from polyfleet.telemetry import tracing
from polyfleet.v1 import activities_pb2
from runner.errors import ActivityFailedError, ExecutionClosedError
from runner.graphton import execution_logger, run_graphton
from runner.heartbeat import heartbeating
from runner.progress import ProgressReporter
from runner.runner_client import RunnerClient
from runner.workflow_host import WorkflowHost

logger = logging.getLogger(__name__)


def _log_extra(execution_id: str) -> dict[str, str]:
    info = activity.info()
    return {
        "execution_id": execution_id,
        "workflow_id": info.workflow_id or "",
        "run_id": info.workflow_run_id or "",
    }


def _report_prefix() -> str:
    # Deterministic per activity attempt: a report retried by the RunnerService client
    # keeps its ID, and a new attempt's reports are new reports.
    info = activity.info()
    return f"{info.workflow_run_id}/{info.activity_id}/{info.attempt}"


class RunnerActivities:
    """Activity implementations bound to one RunnerService client."""

    def __init__(
        self, client: RunnerClient, settings: RunnerSettings, workflows: WorkflowHost
    ) -> None:
        self._client = client
        self._settings = settings
        self._workflows = workflows

    @activity.defn(name=contract.ENSURE_THREAD)
    async def ensure_thread(
        self, params: activities_pb2.EnsureThreadInput
    ) -> activities_pb2.EnsureThreadOutput:
        """Get or create the conversation thread of the execution's session."""
        with tracing.execution_scope(params.execution_id):
            response = await self._client.ensure_thread(params.execution_id)
        logger.info(
            "thread %s ready (created=%s)",
            response.thread_id,
            response.created,
            extra=_log_extra(params.execution_id),
        )
        return activities_pb2.EnsureThreadOutput(
            thread_id=response.thread_id, created=response.created
        )

    @activity.defn(name=contract.EXECUTE_GRAPHTON)
    async def execute_graphton(
        self, params: activities_pb2.ExecuteGraphtonInput
    ) -> activities_pb2.ExecuteGraphtonOutput:
        """Run the agent with the Graphton runtime, reporting progress as it happens.

        Cancellation (delivered through the heartbeat) arrives as CancelledError: the
        graph, its MCP sessions and any in-flight model request stop, unsent progress is
        dropped, and the CancelledError propagates so Temporal records the cancellation.
        """
        execution_id = params.execution_id
        log = execution_logger(logger, _log_extra(execution_id))
        progress = ProgressReporter(
            self._client,
            execution_id,
            _report_prefix(),
            self._settings.delta_flush_interval.total_seconds(),
        )
        try:
            # Its spans (model, tool, sub-agent) name the execution.
            with tracing.execution_scope(execution_id):
                async with heartbeating(self._settings.heartbeat_interval), progress:
                    return await run_graphton(params, self._client, progress, self._settings, log)
        except ExecutionClosedError as err:
            raise ApplicationError(
                f"the execution ended while the agent ran: {err}",
                type=contract.EXECUTION_CLOSED,
                non_retryable=True,
            ) from err
        except ActivityFailedError as err:
            log.warning("agent failed (%s): %s", err.error_type, err.message)
            # No cause chain: a provider exception's text may hold what was scrubbed here.
            raise ApplicationError(err.message, type=err.error_type, non_retryable=True) from None

    @activity.defn(name=contract.EXECUTE_WORKFLOW)
    async def execute_workflow(
        self, params: activities_pb2.ExecuteWorkflowInput
    ) -> activities_pb2.ExecuteWorkflowOutput:
        """Run a Serverless Workflow document, resuming from the last checkpoint."""
        with tracing.execution_scope(params.execution_id):
            return await self._workflows.run(params, _report_prefix())
