"""The workflow a workflow's Temporal Schedule starts: one local StartScheduledExecution.

A Temporal Schedule can only start a Temporal workflow; a polyfleet execution is a store
record plus its WorkflowExecutionWorkflow. So each scheduled action starts this small
workflow on the workflow-execution orchestrator queue, whose local activity creates the
execution through the same path as CreateWorkflowExecution (orchestrator/schedules.py).
Its own workflow ID (the schedule's action ID plus the scheduled time) is the execution's
request_id, so a retried activity or a replayed task creates the execution once.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

SCHEDULED_WORKFLOW_START = "ScheduledWorkflowStart"
START_SCHEDULED_EXECUTION = "StartScheduledExecution"
# The workflow no longer exists: retrying cannot help.
WORKFLOW_GONE = "ScheduledWorkflowGone"
START_RETRY = RetryPolicy(
    maximum_attempts=10,
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=[WORKFLOW_GONE],
)


@workflow.defn(name=SCHEDULED_WORKFLOW_START)
class ScheduledWorkflowStart:
    """Creates one execution of the workflow named by the schedule; returns its ID."""

    @workflow.run
    async def run(self, workflow_name: str) -> str:
        """Create the execution (local activity, deduplicated by this workflow's ID)."""
        execution_id: str = await workflow.execute_local_activity(
            START_SCHEDULED_EXECUTION,
            args=[workflow_name, workflow.info().workflow_id],
            result_type=str,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=START_RETRY,
        )
        return execution_id
