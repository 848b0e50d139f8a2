"""The agent execution workflow: EnsureThread -> ExecuteGraphton -> UpdateStatus."""

from __future__ import annotations

from temporalio import workflow
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from orchestrator.workflows.common import ENSURE_THREAD_RETRY, NO_RETRY, Policy, Steps
    from polyfleet import contract
    from polyfleet.v1 import activities_pb2, common_pb2

# Used only when an execution was started without a policy and without a memo.
DEFAULT_RUNNER_QUEUE = "agent_execution_runner"


@workflow.defn(name=contract.AGENT_EXECUTION_WORKFLOW)
class AgentExecutionWorkflow:
    """Runs one agent execution on the runner queue named in the memo.

    The terminal state is always persisted through the local UpdateStatus
    activity, so it reaches the store even if a runner's last report was lost.
    """

    @workflow.run
    async def run(
        self, params: activities_pb2.AgentExecutionWorkflowInput
    ) -> activities_pb2.AgentExecutionWorkflowOutput:
        """Run the execution and return its terminal phase."""
        steps = Steps(Policy.resolve(params.policy, DEFAULT_RUNNER_QUEUE), params.execution_id)
        policy, execution_id = steps.policy, params.execution_id

        async def body() -> activities_pb2.ExecuteGraphtonOutput:
            thread = await steps.execute(
                contract.ENSURE_THREAD,
                activities_pb2.EnsureThreadInput(
                    execution_id=execution_id, session_id=params.session_id
                ),
                activities_pb2.EnsureThreadOutput,
                start_to_close_timeout=policy.ensure_thread_start_to_close,
                schedule_to_start_timeout=policy.schedule_to_start,
                retry_policy=ENSURE_THREAD_RETRY,
            )
            return await steps.execute(
                contract.EXECUTE_GRAPHTON,
                activities_pb2.ExecuteGraphtonInput(
                    execution_id=execution_id, thread_id=thread.thread_id
                ),
                activities_pb2.ExecuteGraphtonOutput,
                start_to_close_timeout=policy.execute_graphton_start_to_close,
                schedule_to_start_timeout=policy.schedule_to_start,
                heartbeat_timeout=policy.heartbeat,
                retry_policy=NO_RETRY,
                # The runner stops the graph when it sees the cancellation; wait for
                # that so CANCELLED is persisted after the last runner report.
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )

        result = await steps.run(body)
        return activities_pb2.AgentExecutionWorkflowOutput(
            phase=common_pb2.EXECUTION_PHASE_COMPLETED, final_message_id=result.final_message_id
        )
