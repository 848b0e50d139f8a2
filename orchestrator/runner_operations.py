"""What runners fetch and write through RunnerService: context, thread history, checkpoints."""

from __future__ import annotations

import store
from orchestrator.agent_executions import AgentExecutions
from orchestrator.workflow_executions import WorkflowExecutions
from polyfleet.v1 import runner_pb2


class RunnerOperations:
    """The logic behind RunnerService; runners stay stateless by asking here."""

    def __init__(
        self, db: store.Store, agents: AgentExecutions, workflows: WorkflowExecutions
    ) -> None:
        self._db = db
        self._agents = agents
        self._workflows = workflows

    async def context(self, execution_id: str) -> runner_pb2.GetAgentExecutionContextResponse:
        """Return the execution, its agent and the thread history before it."""
        execution = await self._agents.get(execution_id)
        agent = await self._db.agents.get(execution.agent)
        thread, _ = await self._db.threads.get_or_create_for_session(execution.session_id)
        return runner_pb2.GetAgentExecutionContextResponse(
            execution=execution,
            agent=agent,
            history=list(thread.messages),
            max_output_bytes=self._agents.settings.max_output_bytes,
        )

    async def workflow_context(
        self, execution_id: str
    ) -> runner_pb2.GetWorkflowExecutionContextResponse:
        """Return the workflow execution and its workflow resource."""
        execution = await self._workflows.get(execution_id)
        definition = await self._db.workflows.get(execution.workflow)
        return runner_pb2.GetWorkflowExecutionContextResponse(
            execution=execution,
            workflow=definition,
            max_output_bytes=self._workflows.settings.max_output_bytes,
        )

    async def ensure_thread(self, execution_id: str) -> runner_pb2.EnsureThreadResponse:
        """Get or create the thread of the execution's session."""
        execution = await self._agents.get(execution_id)
        thread, created = await self._db.threads.get_or_create_for_session(execution.session_id)
        return runner_pb2.EnsureThreadResponse(
            thread_id=thread.id, created=created, message_count=len(thread.messages)
        )

    async def append_thread_messages(
        self, request: runner_pb2.AppendThreadMessagesRequest
    ) -> runner_pb2.AppendThreadMessagesResponse:
        """Append messages to a thread once per report ID."""
        thread = await self._db.threads.append_messages(
            request.thread_id, request.report_id, list(request.messages)
        )
        return runner_pb2.AppendThreadMessagesResponse(message_count=len(thread.messages))

    async def put_checkpoint(self, request: runner_pb2.PutCheckpointRequest) -> None:
        """Store the latest checkpoint of a workflow execution.

        Raises:
            store.NotFoundError: No such workflow execution.
            store.InvalidArgumentError: ``sequence`` is out of the store's range.
        """
        await self._workflows.get(request.execution_id)
        await self._db.checkpoints.put(request.execution_id, request.sequence, request.data)

    async def get_checkpoint(self, execution_id: str) -> runner_pb2.GetCheckpointResponse:
        """Return the latest checkpoint of a workflow execution, if any."""
        checkpoint = await self._db.checkpoints.get(execution_id)
        if checkpoint is None:
            return runner_pb2.GetCheckpointResponse(found=False)
        return runner_pb2.GetCheckpointResponse(
            found=True, sequence=checkpoint.sequence, data=checkpoint.data
        )
