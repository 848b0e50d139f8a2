"""Workflow executions: what differs from agent executions (workflow document and input)."""

from __future__ import annotations

import hashlib

import store
from orchestrator.errors import InvalidArgumentError, NotFoundError
from orchestrator.executions import DEFAULT_PRIORITY, Executions, Kind
from orchestrator.status import merge_workflow_update
from orchestrator.validation import validate_priority
from polyfleet import contract
from polyfleet.v1 import activities_pb2, common_pb2, workflow_execution_pb2

WorkflowExecution = workflow_execution_pb2.WorkflowExecution


def _workflow_input(
    execution: WorkflowExecution, policy: activities_pb2.ActivityPolicy
) -> activities_pb2.WorkflowExecutionWorkflowInput:
    return activities_pb2.WorkflowExecutionWorkflowInput(execution_id=execution.id, policy=policy)


WORKFLOW_KIND: Kind[WorkflowExecution] = Kind(
    name="workflow execution",
    repository=lambda db: db.workflow_executions,
    merge=merge_workflow_update,
    workflow_type=contract.WORKFLOW_EXECUTION_WORKFLOW,
    workflow_id=contract.workflow_execution_workflow_id,
    orchestrator_queue=lambda q: q.workflow_execution_orchestrator_task_queue,
    runner_queue=lambda q: q.workflow_execution_runner_task_queue,
    run_timeout=lambda s: s.workflow_run_timeout,
    workflow_input=_workflow_input,
)


class WorkflowExecutions(Executions[WorkflowExecution]):
    """Workflow executions: the shared service plus workflow lookup on Create."""

    kind = WORKFLOW_KIND

    async def create_from(
        self, request: workflow_execution_pb2.CreateWorkflowExecutionRequest
    ) -> WorkflowExecution:
        """Validate a Create request, persist PENDING, start the workflow.

        Raises:
            InvalidArgumentError: A field of the request is invalid.
            NotFoundError: The workflow does not exist.
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
        try:
            definition = await self._db.workflows.get(spec.workflow)
        except store.NotFoundError:
            raise NotFoundError("workflow", spec.workflow) from None
        execution_id = store.new_id("wex")
        execution = WorkflowExecution(
            id=execution_id,
            workflow=definition.name,
            input=spec.input,
            labels=dict(spec.labels),
            request_id=request.request_id,
            workflow_id=WORKFLOW_KIND.workflow_id(execution_id),
            document=definition.document,
            priority=spec.priority or DEFAULT_PRIORITY,
            status=workflow_execution_pb2.WorkflowExecutionStatus(
                phase=common_pb2.EXECUTION_PHASE_PENDING
            ),
        )
        first = common_pb2.ExecutionUpdate(
            phase=common_pb2.EXECUTION_PHASE_PENDING, reason="created"
        )
        body = workflow_execution_pb2.CreateWorkflowExecutionRequest()
        body.CopyFrom(request)
        body.ClearField("request_id")
        return await self.create(
            execution,
            first,
            request_key=request.request_id,
            fingerprint=hashlib.sha256(body.SerializeToString(deterministic=True)).digest(),
        )

    async def execute(
        self, request: workflow_execution_pb2.ExecuteWorkflowRequest
    ) -> WorkflowExecution:
        """Create an execution and wait for its terminal state (see ``execute_wait``)."""
        wait = self.execute_wait(request.timeout if request.HasField("timeout") else None)
        execution = await self.create_from(request.request)
        return await self.wait_terminal(execution.id, wait)

    async def list_from(
        self, request: workflow_execution_pb2.ListWorkflowExecutionsRequest
    ) -> workflow_execution_pb2.ListWorkflowExecutionsResponse:
        """List executions for a List request."""
        filters: dict[str, str | int] = {}
        if request.workflow:
            filters["workflow"] = request.workflow
        if request.phase:
            filters["phase"] = int(request.phase)
        items, token = await self.list_for(filters, request)
        return workflow_execution_pb2.ListWorkflowExecutionsResponse(
            executions=items, next_page_token=token
        )
