"""Workflow executions: what differs from agent executions (workflow document and input)."""

from __future__ import annotations

from datetime import timedelta

import store
from orchestrator.errors import InvalidArgumentError
from orchestrator.executions import DEFAULT_PRIORITY, Executions, request_fingerprint
from orchestrator.status import merge_workflow_update
from orchestrator.validation import validate_priority
from polyfleet import contract
from polyfleet.v1 import activities_pb2, common_pb2, workflow_execution_pb2

WorkflowExecution = workflow_execution_pb2.WorkflowExecution
CreateRequest = workflow_execution_pb2.CreateWorkflowExecutionRequest


class WorkflowExecutions(Executions[WorkflowExecution, CreateRequest]):
    """Workflow executions: the shared service plus workflow lookup on Create."""

    workflow_type = contract.WORKFLOW_EXECUTION_WORKFLOW

    def _repository(self, db: store.Store) -> store.WorkflowExecutionRepository:
        return db.workflow_executions

    def merge(
        self,
        execution: WorkflowExecution,
        update: common_pb2.ExecutionUpdate,
        source: str,
        actor: common_pb2.Actor | None = None,
    ) -> None:
        """Merge a report into a workflow execution (see :func:`merge_workflow_update`)."""
        merge_workflow_update(execution, update, source, actor)

    def orchestrator_queue(self) -> str:
        """The workflow execution orchestrator queue."""
        return self._queues.workflow_execution_orchestrator_task_queue

    def runner_queue(self) -> str:
        """The default workflow runner queue."""
        return self._queues.workflow_execution_runner_task_queue

    def run_timeout(self) -> timedelta:
        """The workflow-execution workflow's run timeout."""
        return self.settings.workflow_run_timeout

    def workflow_input(
        self, execution: WorkflowExecution, policy: activities_pb2.ActivityPolicy
    ) -> activities_pb2.WorkflowExecutionWorkflowInput:
        """The workflow-execution workflow's input: the execution and the policy."""
        return activities_pb2.WorkflowExecutionWorkflowInput(
            execution_id=execution.id, policy=policy
        )

    async def create(self, request: CreateRequest) -> WorkflowExecution:
        """Validate a Create request, persist PENDING, start the workflow.

        Raises:
            InvalidArgumentError: A field of the request is invalid.
            store.NotFoundError: The workflow does not exist.
            WorkflowStartError: Temporal did not start the workflow; the execution is
                persisted FAILED with the reason.
        """
        spec = request.execution
        if not spec.workflow:
            raise InvalidArgumentError("execution.workflow", "must not be empty")
        size = spec.input.ByteSize()
        limit = self.settings.max_input_bytes
        if size > limit:
            raise InvalidArgumentError(
                "execution.input",
                f"is {size} bytes; the limit is {limit} (POLYFLEET_MAX_INPUT_BYTES)",
            )
        validate_priority(spec.priority, "execution.priority")
        definition = await self._db.workflows.get(spec.workflow)
        execution_id = store.new_id(contract.WORKFLOW_EXECUTION_ID_PREFIX)
        execution = WorkflowExecution(
            id=execution_id,
            workflow=definition.name,
            input=spec.input,
            labels=dict(spec.labels),
            request_id=request.request_id,
            workflow_id=contract.workflow_execution_workflow_id(execution_id),
            document=definition.document,
            resolved_functions=dict(definition.resolved_functions),
            # The workflow's runner pool, else the default: start_workflow puts it in the memo.
            runner_queue=definition.runner_queue or self.runner_queue(),
            priority=spec.priority or DEFAULT_PRIORITY,
            status=workflow_execution_pb2.WorkflowExecutionStatus(
                phase=common_pb2.EXECUTION_PHASE_PENDING
            ),
        )
        first = common_pb2.ExecutionUpdate(
            phase=common_pb2.EXECUTION_PHASE_PENDING, reason="created"
        )
        return await self.persist_and_start(
            execution,
            first,
            request_key=request.request_id,
            fingerprint=request_fingerprint(request),
        )

    async def list(
        self, request: workflow_execution_pb2.ListWorkflowExecutionsRequest
    ) -> workflow_execution_pb2.ListWorkflowExecutionsResponse:
        """The List RPC: one page, filtered by workflow and phase."""
        filters: dict[str, str | int] = {}
        if request.workflow:
            filters["workflow"] = request.workflow
        if request.phase:
            filters["phase"] = int(request.phase)
        items, token = await self.list_page(filters, request)
        return workflow_execution_pb2.ListWorkflowExecutionsResponse(
            executions=items, next_page_token=token
        )
