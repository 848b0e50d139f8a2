"""The workflow-execution workflow: one resumable ExecuteWorkflow -> UpdateStatus."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from orchestrator.workflows.common import Policy, Steps
    from polyfleet import contract
    from polyfleet.v1 import activities_pb2, common_pb2

# Used only when an execution was started without a policy and without a memo.
DEFAULT_RUNNER_QUEUE = "workflow_execution_runner"
# Failures a retry on another runner cannot fix.


@workflow.defn(name=contract.WORKFLOW_EXECUTION_WORKFLOW)
class WorkflowExecutionWorkflow:
    """Runs one workflow execution on the runner queue named in the memo.

    ExecuteWorkflow heartbeats a checkpoint after each task; when a runner dies, the
    heartbeat timeout fires and the retry on another runner resumes from it.
    """

    @workflow.run
    async def run(
        self, params: activities_pb2.WorkflowExecutionWorkflowInput
    ) -> activities_pb2.WorkflowExecutionWorkflowOutput:
        """Run the execution and return its terminal phase."""
        steps = Steps(Policy.resolve(params.policy, DEFAULT_RUNNER_QUEUE), params.execution_id)
        policy = steps.policy

        async def body() -> activities_pb2.ExecuteWorkflowOutput:
            return await steps.execute(
                contract.EXECUTE_WORKFLOW,
                activities_pb2.ExecuteWorkflowInput(execution_id=params.execution_id),
                activities_pb2.ExecuteWorkflowOutput,
                start_to_close_timeout=policy.execute_workflow_start_to_close,
                schedule_to_start_timeout=policy.schedule_to_start,
                heartbeat_timeout=policy.heartbeat,
                retry_policy=RetryPolicy(
                    maximum_attempts=policy.execute_workflow_max_attempts,
                    initial_interval=timedelta(seconds=1),
                    non_retryable_error_types=list(contract.WORKFLOW_NON_RETRYABLE),
                ),
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )

        await steps.run(body)
        return activities_pb2.WorkflowExecutionWorkflowOutput(
            phase=common_pb2.EXECUTION_PHASE_COMPLETED
        )
