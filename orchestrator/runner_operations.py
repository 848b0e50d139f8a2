"""What runners fetch and write through RunnerService.

Context, thread history, checkpoints, and the child executions of a workflow's tasks: agent
executions of `call: agent`, workflow executions of `run: workflow`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import store
from orchestrator.agent_executions import AgentExecutions
from orchestrator.errors import FailedPreconditionError, InvalidArgumentError
from orchestrator.executions import C, E, Executions
from orchestrator.validation import MAX_REQUEST_ID_CHARS
from orchestrator.workflow_executions import WorkflowExecutions
from polyfleet import contract
from polyfleet.dsl import load_document
from polyfleet.v1 import agent_execution_pb2, common_pb2, runner_pb2, workflow_execution_pb2

AgentExecution = agent_execution_pb2.AgentExecution
WorkflowExecution = workflow_execution_pb2.WorkflowExecution


def _required(value: str, field: str) -> str:
    if not value:
        raise InvalidArgumentError(field, "must not be empty")
    return value


def child_request_key(request: runner_pb2.CreateChildAgentExecutionRequest) -> str:
    """The idempotency key of a child's Create: scoped to its parent and task.

    A runner's ``request_id`` is unique only within its parent, so the key stored is a
    digest of the parent, task, request ID, agent and message: another parent's keys never
    collide with it, and a retry whose message changed creates a new child rather than
    failing on the key.
    """
    parts = (
        request.execution_id,
        request.task_id,
        request.request_id,
        request.agent,
        request.message,
    )
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]
    return f"child-{digest}"


def child_workflow_request_key(request: runner_pb2.CreateChildWorkflowExecutionRequest) -> str:
    """The idempotency key of a child workflow's Create (as :func:`child_request_key`)."""
    parts = (
        request.execution_id,
        request.task_id,
        request.request_id,
        request.workflow,
        request.version,
        request.namespace,
        request.input.SerializeToString(deterministic=True).hex(),
    )
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]
    return f"child-workflow-{digest}"


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

    def thread_appending(self, request: runner_pb2.AppendThreadMessagesRequest) -> store.WriteStep:
        """:meth:`append_thread_messages` as a write to commit with a report that carries it."""
        return self._db.threads.appending(
            request.thread_id, request.report_id, list(request.messages)
        )

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

    @staticmethod
    def _child_labels(
        request: runner_pb2.CreateChildAgentExecutionRequest
        | runner_pb2.CreateChildWorkflowExecutionRequest,
    ) -> dict[str, str]:
        """The labels naming a child's parent and task, once the Create's IDs are checked.

        Raises:
            InvalidArgumentError: ``execution_id`` or ``task_id`` is empty, or
                ``request_id`` is too long.
        """
        parent_id = _required(request.execution_id, "execution_id")
        task_id = _required(request.task_id, "task_id")
        if len(request.request_id) > MAX_REQUEST_ID_CHARS:
            raise InvalidArgumentError(
                "request_id", f"is longer than {MAX_REQUEST_ID_CHARS} characters"
            )
        return {
            contract.PARENT_EXECUTION_LABEL: parent_id,
            contract.PARENT_TASK_LABEL: task_id.replace("/", ".").strip("."),
        }

    async def _open_parent(self, parent_id: str, what: str) -> None:
        """Refuse children of a parent that is not a workflow execution or is terminal.

        Raises:
            store.NotFoundError: The parent does not exist.
            FailedPreconditionError: The parent is not a workflow execution (only a
                workflow's ``what`` task has children), or is terminal.
        """
        if not contract.is_workflow_execution(parent_id):
            raise FailedPreconditionError(
                f"execution {parent_id} is not a workflow execution: only a workflow's "
                f"{what} task has child executions",
                execution_id=parent_id,
            )
        parent = await self._workflows.get(parent_id)
        if contract.is_terminal(parent.status.phase):
            raise FailedPreconditionError(
                f"workflow execution {parent_id} is "
                f"{contract.phase_name(parent.status.phase)}: it starts no more children",
                execution_id=parent_id,
            )

    @staticmethod
    async def _create(executions: Executions[E, C], create: C) -> E:
        """Create a child; a rejected field is named as in this request, not the public one."""
        try:
            return await executions.create(create)
        except InvalidArgumentError as err:
            raise InvalidArgumentError.of(
                [(f.removeprefix("execution."), p) for f, p in err.violations]
            ) from None

    @staticmethod
    async def _child(executions: Executions[E, C], parent_id: str, child_id: str) -> E:
        """The child, if it is ``parent_id``'s; another parent's child is not found.

        Raises:
            InvalidArgumentError: An ID is empty.
            store.NotFoundError: No such child of this parent.
        """
        _required(parent_id, "execution_id")
        _required(child_id, "child_execution_id")
        child = await executions.get(child_id, common_pb2.EXECUTION_VIEW_BASIC)
        if child.labels.get(contract.PARENT_EXECUTION_LABEL) != parent_id:
            # Not PERMISSION_DENIED: a runner learns nothing of other parents' children.
            raise store.NotFoundError(f"{executions.metric_kind} execution", child_id)
        return child

    async def _watch_child(
        self, executions: Executions[E, C], parent_id: str, child_id: str, after_sequence: int
    ) -> AsyncIterator[E | common_pb2.ExecutionEvent]:
        """The public Watch of a child of ``parent_id`` (snapshot, then events).

        Raises:
            InvalidArgumentError: An ID is empty, or ``after_sequence`` is negative.
            store.NotFoundError: No such child of this parent.
        """
        await self._child(executions, parent_id, child_id)
        async for item in executions.watch(child_id, after_sequence):
            yield item

    async def _cancel_child(self, executions: Executions[E, C], parent_id: str, child_id: str) -> E:
        """The public Cancel of a child of ``parent_id``.

        Raises:
            InvalidArgumentError: An ID is empty.
            store.NotFoundError: No such child of this parent.
        """
        await self._child(executions, parent_id, child_id)
        return await executions.cancel(child_id)

    async def create_child(
        self, request: runner_pb2.CreateChildAgentExecutionRequest
    ) -> AgentExecution:
        """Create the child agent execution of a workflow execution's `call: agent` task.

        The orchestrator, not the runner, sets the parent labels. With a ``request_id``
        the create is idempotent within the parent (see :func:`child_request_key`).

        Raises:
            InvalidArgumentError: A field is empty or malformed (named by its field here).
            store.NotFoundError: The parent or the agent does not exist.
            FailedPreconditionError: The parent is not a workflow execution, or is terminal.
        """
        labels = self._child_labels(request)
        await self._open_parent(request.execution_id, "`call: agent`")
        create = agent_execution_pb2.CreateAgentExecutionRequest(
            execution=AgentExecution(agent=request.agent, message=request.message, labels=labels),
            request_id=child_request_key(request) if request.request_id else "",
        )
        return await self._create(self._agents, create)

    def watch_child(
        self, request: runner_pb2.WatchChildAgentExecutionRequest
    ) -> AsyncIterator[AgentExecution | common_pb2.ExecutionEvent]:
        """The public Watch of a child agent execution of ``execution_id``."""
        return self._watch_child(
            self._agents, request.execution_id, request.child_execution_id, request.after_sequence
        )

    async def cancel_child(
        self, request: runner_pb2.CancelChildAgentExecutionRequest
    ) -> AgentExecution:
        """The public Cancel of a child agent execution of ``execution_id``."""
        return await self._cancel_child(
            self._agents, request.execution_id, request.child_execution_id
        )

    async def create_child_workflow(
        self, request: runner_pb2.CreateChildWorkflowExecutionRequest
    ) -> WorkflowExecution:
        """Create the child workflow execution of a workflow execution's `run: workflow` task.

        The orchestrator sets the parent labels. With a ``request_id`` the create is
        idempotent within the parent (see :func:`child_workflow_request_key`).

        Raises:
            InvalidArgumentError: A field is empty or malformed (named by its field here).
            store.NotFoundError: The parent or the workflow does not exist.
            InvalidArgumentError: Also when ``version`` / ``namespace`` differ from the
                applied workflow's document.
            FailedPreconditionError: The parent is not a workflow execution or is terminal.
        """
        labels = self._child_labels(request)
        _required(request.workflow, "workflow")
        await self._open_parent(request.execution_id, "`run: workflow`")
        definition = await self._db.workflows.get(request.workflow)
        if request.version or request.namespace:
            header = _document_header(definition.document)
            for field, wanted in (("version", request.version), ("namespace", request.namespace)):
                have = str(header.get(field, ""))
                if wanted and wanted != have:
                    # One document per name is applied: another version is not there.
                    raise InvalidArgumentError(
                        field,
                        f"workflow {definition.name} is applied with document.{field} "
                        f"{have!r}, not {wanted!r}",
                    )
        create = workflow_execution_pb2.CreateWorkflowExecutionRequest(
            execution=WorkflowExecution(
                workflow=definition.name, input=request.input, labels=labels
            ),
            request_id=child_workflow_request_key(request) if request.request_id else "",
        )
        return await self._create(self._workflows, create)

    def watch_child_workflow(
        self, request: runner_pb2.WatchChildWorkflowExecutionRequest
    ) -> AsyncIterator[WorkflowExecution | common_pb2.ExecutionEvent]:
        """The public Watch of a child workflow execution of ``execution_id``."""
        return self._watch_child(
            self._workflows,
            request.execution_id,
            request.child_execution_id,
            request.after_sequence,
        )

    async def cancel_child_workflow(
        self, request: runner_pb2.CancelChildWorkflowExecutionRequest
    ) -> WorkflowExecution:
        """The public Cancel of a child workflow execution of ``execution_id``."""
        return await self._cancel_child(
            self._workflows, request.execution_id, request.child_execution_id
        )


def _document_header(text: str) -> dict[str, object]:
    """The `document` block of an applied (hence valid) workflow document."""
    document = load_document(text)
    header = document.get("document")
    return dict(header) if isinstance(header, dict) else {}
