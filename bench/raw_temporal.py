"""Raw Temporal with polyfleet's hops: the baseline of the fleet benchmark (bench/bench_fleet.py).

One workflow on a "workflow" queue reads the runner queue from its memo
(``activityTaskQueue``), runs ``EnsureThread`` then ``ExecuteGraphton`` there, then one local
``UpdateStatus`` activity: the hops of polyfleet's agent execution workflow, with the same
names, protobuf inputs and outputs (``json/protobuf`` payloads, Temporal's default
converter), timeouts, retry policies and priority, but trivial bodies and no API, store,
status reports or agent runtime around them.

Each worker is a process of its own, as the orchestrator and the runner are::

    python -m bench.raw_temporal workflow --address 127.0.0.1:7233 --queue bench-raw-workflow
    python -m bench.raw_temporal activities --address 127.0.0.1:7233 --queue bench-raw-activity

Each prints ``raw worker polling <queue>`` once it polls, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.workflow import ActivityCancellationType

# As in the orchestrator's workflow modules: whatever the sandbox's settings re-import for
# each workflow run, these are the host's.
with workflow.unsafe.imports_passed_through():
    from orchestrator.workflows.common import ENSURE_THREAD_RETRY, NO_RETRY, UPDATE_STATUS_RETRY
    from polyfleet import contract
    from polyfleet.v1 import activities_pb2, common_pb2

WORKFLOW = "RawAgentExecutionWorkflow"
WORKFLOW_QUEUE = "bench-raw-workflow"
ACTIVITY_QUEUE = "bench-raw-activity"
READY_LINE = "raw worker polling"


@workflow.defn(name=WORKFLOW)
class RawAgentExecutionWorkflow:
    """EnsureThread → ExecuteGraphton on the memo's queue → UpdateStatus (local)."""

    @workflow.run
    async def run(
        self, params: activities_pb2.AgentExecutionWorkflowInput
    ) -> activities_pb2.AgentExecutionWorkflowOutput:
        """Run the three hops with the contract's default options."""
        queue = workflow.memo_value(
            contract.MEMO_ACTIVITY_TASK_QUEUE, default=ACTIVITY_QUEUE, type_hint=str
        )
        thread = await workflow.execute_activity(
            contract.ENSURE_THREAD,
            activities_pb2.EnsureThreadInput(
                execution_id=params.execution_id, session_id=params.session_id
            ),
            result_type=activities_pb2.EnsureThreadOutput,
            task_queue=queue,
            start_to_close_timeout=contract.ENSURE_THREAD_START_TO_CLOSE,
            schedule_to_start_timeout=contract.SCHEDULE_TO_START,
            retry_policy=ENSURE_THREAD_RETRY,
        )
        result = await workflow.execute_activity(
            contract.EXECUTE_GRAPHTON,
            activities_pb2.ExecuteGraphtonInput(
                execution_id=params.execution_id, thread_id=thread.thread_id
            ),
            result_type=activities_pb2.ExecuteGraphtonOutput,
            task_queue=queue,
            start_to_close_timeout=contract.EXECUTE_GRAPHTON_START_TO_CLOSE,
            schedule_to_start_timeout=contract.SCHEDULE_TO_START,
            heartbeat_timeout=contract.HEARTBEAT_TIMEOUT,
            retry_policy=NO_RETRY,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        info = workflow.info()
        await workflow.execute_local_activity(
            contract.UPDATE_STATUS,
            activities_pb2.UpdateStatusInput(
                execution_id=params.execution_id,
                report_id=f"{info.run_id}/completed",
                update=common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_COMPLETED),
            ),
            result_type=activities_pb2.UpdateStatusOutput,
            start_to_close_timeout=contract.UPDATE_STATUS_START_TO_CLOSE,
            retry_policy=UPDATE_STATUS_RETRY,
        )
        return activities_pb2.AgentExecutionWorkflowOutput(
            phase=common_pb2.EXECUTION_PHASE_COMPLETED, final_message_id=result.final_message_id
        )


@activity.defn(name=contract.ENSURE_THREAD)
async def ensure_thread(
    params: activities_pb2.EnsureThreadInput,
) -> activities_pb2.EnsureThreadOutput:
    """A thread ID, at once."""
    return activities_pb2.EnsureThreadOutput(thread_id=f"thread-{params.execution_id}")


@activity.defn(name=contract.EXECUTE_GRAPHTON)
async def execute_graphton(
    params: activities_pb2.ExecuteGraphtonInput,
) -> activities_pb2.ExecuteGraphtonOutput:
    """A final message ID, at once."""
    return activities_pb2.ExecuteGraphtonOutput(
        final_message_id=f"{params.execution_id}/answer", message_count=1
    )


@activity.defn(name=contract.UPDATE_STATUS)
async def update_status(
    params: activities_pb2.UpdateStatusInput,
) -> activities_pb2.UpdateStatusOutput:
    """Acknowledge the report, at once."""
    return activities_pb2.UpdateStatusOutput(sequence=1, applied=True)


async def serve(role: str, address: str, namespace: str, queue: str) -> None:
    """Poll ``queue`` as the workflow or the activity worker until SIGTERM or SIGINT."""
    # Imported here: a workflow run in the sandbox needs none of it.
    from temporalio.client import Client
    from temporalio.worker import Worker

    # Run with `python -m`, this file is __main__, whose classes the sandbox cannot import by
    # module name: register the definitions of the module imported under its own name.
    from bench import raw_temporal as defined
    from orchestrator.sandbox import WORKFLOW_RUNNER
    from polyfleet.config import RunnerSettings

    client = await Client.connect(address, namespace=namespace)
    if role == "workflow":
        # As the orchestrator's workers: local activities only, the same sandbox.
        worker = Worker(
            client,
            task_queue=queue,
            workflows=[defined.RawAgentExecutionWorkflow],
            activities=[defined.update_status],
            no_remote_activities=True,
            workflow_runner=WORKFLOW_RUNNER,
        )
    else:
        # As the runner's worker, with the runner's default settings.
        runner = RunnerSettings.model_fields
        throttle = runner["heartbeat_throttle_interval"].default
        assert isinstance(throttle, timedelta)
        worker = Worker(
            client,
            task_queue=queue,
            activities=[defined.ensure_thread, defined.execute_graphton],
            max_concurrent_activities=runner["max_concurrent_activities"].default,
            max_heartbeat_throttle_interval=throttle,
            default_heartbeat_throttle_interval=throttle,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with worker:
        print(f"{READY_LINE} {queue}", flush=True)
        await stop.wait()


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("role", choices=("workflow", "activities"))
    parser.add_argument("--address", required=True, help="Temporal frontend host:port")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--queue", help="the task queue to poll (default: the role's own)")
    args = parser.parse_args()
    queue = args.queue or (WORKFLOW_QUEUE if args.role == "workflow" else ACTIVITY_QUEUE)
    asyncio.run(serve(args.role, args.address, args.namespace, queue))


if __name__ == "__main__":
    main()
