"""In-memory WorkflowService and WorkflowExecutionService for the CLI tests (see fake_api.py).

A workflow execution is scripted from the document's top-level ``do`` list, one task after
the other: each task reports RUNNING, then COMPLETED with its output, which feeds the next
task. ``set`` with a mapping outputs that mapping as written (expressions are not
evaluated); ``call: agent`` links a child agent execution ``aex-child-<n>`` and outputs
``"<agent> says: <message>"``; a task whose ``if`` is ``${ false }`` is SKIPPED;
``raise`` fails the task and the execution with the error's ``title``; any other task
passes its input through. The workflow's output is the last task's output.

Input keys steer the fake: ``hang`` leaves the execution RUNNING in its first task until
it is cancelled (and makes ExecuteWorkflow time out, as does ``deadline``); ``flaky`` makes
the first watch break with UNAVAILABLE after three events.

ApplyWorkflow answers INVALID_ARGUMENT, as the API does, when a ``call: agent`` names an
agent that is not stored.
"""

# The servicer methods implement the generated gRPC interface, so they keep its names.
# ruff: noqa: N802

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import yaml
from google.protobuf import empty_pb2, json_format, struct_pb2

from orchestrator.errors import ExecutionDeadlineError
from orchestrator.servicers.errors import error_status
from polyfleet.v1 import (
    common_pb2,
    workflow_execution_pb2,
    workflow_execution_pb2_grpc,
    workflow_pb2,
    workflow_pb2_grpc,
)
from tests.unit.cli.support import one_per_page

Context = grpc.ServicerContext
WorkflowExecution = workflow_execution_pb2.WorkflowExecution
FLAKY_BREAK_AFTER = 3
_TYPES = ("set", "switch", "for", "fork", "try", "wait", "raise", "do")


@dataclass
class WorkflowRecorded:
    """Requests the fake received, for assertions."""

    applied: list[workflow_pb2.Workflow] = field(default_factory=list)
    created: list[workflow_execution_pb2.CreateWorkflowExecutionRequest] = field(
        default_factory=list
    )
    executes: list[workflow_execution_pb2.ExecuteWorkflowRequest] = field(default_factory=list)
    lists: list[workflow_execution_pb2.ListWorkflowExecutionsRequest] = field(default_factory=list)
    watches: list[workflow_execution_pb2.WatchWorkflowExecutionRequest] = field(
        default_factory=list
    )
    cancels: list[str] = field(default_factory=list)


@dataclass
class _Run:
    execution: WorkflowExecution
    events: list[common_pb2.ExecutionEvent]
    flaky: bool = False


class WorkflowState:
    """Workflows and their executions."""

    def __init__(self, agent_names: Callable[[], Collection[str]]) -> None:
        """Start empty.

        Args:
            agent_names: The stored agents' names, which `call: agent` may name.

        """
        self.lock = threading.Lock()
        self.agent_names = agent_names
        self.workflows: dict[str, workflow_pb2.Workflow] = {}
        self.runs: dict[str, _Run] = {}
        self.recorded = WorkflowRecorded()


class FakeWorkflowService(workflow_pb2_grpc.WorkflowServiceServicer):
    """WorkflowService over :class:`WorkflowState`."""

    def __init__(self, state: WorkflowState) -> None:
        """Serve the given state."""
        self.state = state

    def ApplyWorkflow(
        self, request: workflow_pb2.ApplyWorkflowRequest, context: Context
    ) -> workflow_pb2.Workflow:
        """Store the workflow, bumping its version; unknown agents are INVALID_ARGUMENT."""
        document = yaml.safe_load(request.workflow.document)
        known = set(self.state.agent_names())
        for index, item in enumerate(document.get("do", [])):
            ((name, task),) = item.items()
            agent = task.get("with", {}).get("agent") if task.get("call") == "agent" else None
            if agent is not None and agent not in known:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"workflow.document/do/{index}/{name}/with/agent: unknown agent '{agent}'",
                )
        with self.state.lock:
            self.state.recorded.applied.append(request.workflow)
            previous = self.state.workflows.get(request.workflow.name)
            workflow = workflow_pb2.Workflow()
            workflow.CopyFrom(request.workflow)
            workflow.id = f"wf-{workflow.name}"
            workflow.version = previous.version + 1 if previous else 1
            workflow.create_time.FromSeconds(1_700_000_000)
            self.state.workflows[workflow.name] = workflow
            return workflow

    def GetWorkflow(
        self, request: workflow_pb2.GetWorkflowRequest, context: Context
    ) -> workflow_pb2.Workflow:
        """Return the workflow by name or ID, or NOT_FOUND."""
        with self.state.lock:
            found = [w for w in self.state.workflows.values() if request.name in (w.name, w.id)]
        if not found:
            context.abort(grpc.StatusCode.NOT_FOUND, f"workflow '{request.name}' not found")
        return found[0]

    def ListWorkflows(
        self, request: workflow_pb2.ListWorkflowsRequest, context: Context
    ) -> workflow_pb2.ListWorkflowsResponse:
        """Return one workflow per page, to exercise page tokens."""
        with self.state.lock:
            workflows = sorted(self.state.workflows.values(), key=lambda w: w.name)
        page, token = one_per_page(workflows, request.page_token)
        return workflow_pb2.ListWorkflowsResponse(workflows=page, next_page_token=token)

    def CreateWorkflow(
        self, request: workflow_pb2.CreateWorkflowRequest, context: Context
    ) -> workflow_pb2.Workflow:
        """Not needed by the CLI."""
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "fake")

    def UpdateWorkflow(
        self, request: workflow_pb2.UpdateWorkflowRequest, context: Context
    ) -> workflow_pb2.Workflow:
        """Not needed by the CLI."""
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "fake")

    def DeleteWorkflow(
        self, request: workflow_pb2.DeleteWorkflowRequest, context: Context
    ) -> empty_pb2.Empty:
        """Not needed by the CLI."""
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "fake")


class FakeWorkflowExecutionService(workflow_execution_pb2_grpc.WorkflowExecutionServiceServicer):
    """WorkflowExecutionService whose executions finish instantly, as a scripted event log."""

    def __init__(self, state: WorkflowState) -> None:
        """Serve the given state."""
        self.state = state

    def CreateWorkflowExecution(
        self, request: workflow_execution_pb2.CreateWorkflowExecutionRequest, context: Context
    ) -> WorkflowExecution:
        """Record an execution and its whole scripted event log; answer it PENDING."""
        with self.state.lock:
            self.state.recorded.created.append(request)
        run = self._create(request, context)
        pending = WorkflowExecution()
        pending.CopyFrom(run.execution)
        pending.status.Clear()
        pending.status.phase = common_pb2.EXECUTION_PHASE_PENDING
        return pending

    def ExecuteWorkflow(
        self, request: workflow_execution_pb2.ExecuteWorkflowRequest, context: Context
    ) -> WorkflowExecution:
        """Create, then answer with the final execution or DEADLINE_EXCEEDED naming it."""
        with self.state.lock:
            self.state.recorded.executes.append(request)
        run = self._create(request.request, context)
        steer = request.request.execution.input
        if "hang" in steer.fields or "deadline" in steer.fields:
            waited = request.timeout.ToTimedelta().total_seconds() or 60
            # The real API's status: the message, and the ID in ErrorInfo.
            context.abort_with_status(
                error_status(ExecutionDeadlineError(run.execution.id, waited))
            )
        return run.execution

    def GetWorkflowExecution(
        self, request: workflow_execution_pb2.GetWorkflowExecutionRequest, context: Context
    ) -> WorkflowExecution:
        """Return the execution in its final state."""
        run = self._run(request.id, context)
        with self.state.lock:
            return run.execution

    def ListWorkflowExecutions(
        self, request: workflow_execution_pb2.ListWorkflowExecutionsRequest, context: Context
    ) -> workflow_execution_pb2.ListWorkflowExecutionsResponse:
        """Filter by workflow and phase; a page size below the count yields a next page."""
        with self.state.lock:
            self.state.recorded.lists.append(request)
            executions = [r.execution for r in self.state.runs.values()]
        executions = [
            e
            for e in executions
            if (not request.workflow or e.workflow == request.workflow)
            and (not request.phase or e.status.phase == request.phase)
        ]
        token = ""
        if request.page_size and len(executions) > request.page_size:
            executions, token = executions[: request.page_size], "next-page"
        return workflow_execution_pb2.ListWorkflowExecutionsResponse(
            executions=executions, next_page_token=token
        )

    def CancelWorkflowExecution(
        self, request: workflow_execution_pb2.CancelWorkflowExecutionRequest, context: Context
    ) -> WorkflowExecution:
        """Cancel a hanging execution and its running task; a finished one is unchanged."""
        run = self._run(request.id, context)
        with self.state.lock:
            self.state.recorded.cancels.append(request.id)
            if run.execution.status.phase == common_pb2.EXECUTION_PHASE_RUNNING:
                running = [
                    t
                    for t in run.execution.status.tasks
                    if t.phase == common_pb2.TASK_PHASE_RUNNING
                ]
                for task in running:
                    task.phase = common_pb2.TASK_PHASE_CANCELLED
                update = common_pb2.ExecutionUpdate(
                    tasks=running, phase=common_pb2.EXECUTION_PHASE_CANCELLED
                )
                run.execution.status.phase = common_pb2.EXECUTION_PHASE_CANCELLED
                run.events.append(
                    _event(run.execution.id, len(run.events) + 1, update, update.phase)
                )
            return run.execution

    def WatchWorkflowExecution(
        self, request: workflow_execution_pb2.WatchWorkflowExecutionRequest, context: Context
    ) -> Iterator[workflow_execution_pb2.WatchWorkflowExecutionResponse]:
        """Stream a snapshot, then the scripted events after ``after_sequence``."""
        run = self._run(request.id, context)
        with self.state.lock:
            self.state.recorded.watches.append(request)
            first_watch = len(self.state.recorded.watches) == 1
            snapshot = WorkflowExecution()
            snapshot.CopyFrom(run.execution)
            events = list(run.events)
        yield workflow_execution_pb2.WatchWorkflowExecutionResponse(snapshot=snapshot)
        sent = 0
        for event in events:
            if event.sequence <= request.after_sequence:
                continue
            if run.flaky and first_watch and sent == FLAKY_BREAK_AFTER:
                context.abort(grpc.StatusCode.UNAVAILABLE, "fake connection reset")
            yield workflow_execution_pb2.WatchWorkflowExecutionResponse(event=event)
            sent += 1

    def _create(
        self, request: workflow_execution_pb2.CreateWorkflowExecutionRequest, context: Context
    ) -> _Run:
        with self.state.lock:
            workflow = self.state.workflows.get(request.execution.workflow)
            if workflow is None:
                context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"workflow '{request.execution.workflow}' not found",
                )
            execution_id = f"wex-{len(self.state.runs) + 1}"
            run = _script(execution_id, workflow, request.execution)
            self.state.runs[execution_id] = run
        return run

    def _run(self, execution_id: str, context: Context) -> _Run:
        with self.state.lock:
            run = self.state.runs.get(execution_id)
        if run is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"workflow execution '{execution_id}' not found"
            )
        return run


def _value(data: Any) -> struct_pb2.Value:
    return json_format.ParseDict(data, struct_pb2.Value())


def _event(
    execution_id: str,
    sequence: int,
    update: common_pb2.ExecutionUpdate,
    phase: common_pb2.ExecutionPhase.ValueType,
) -> common_pb2.ExecutionEvent:
    return common_pb2.ExecutionEvent(
        execution_id=execution_id, sequence=sequence, update=update, phase=phase
    )


def _task_type(task: dict[str, Any]) -> str:
    if "call" in task:
        return f"call:{task['call']}"
    return next((kind for kind in _TYPES if kind in task), "unknown")


def _script(execution_id: str, workflow: workflow_pb2.Workflow, request: WorkflowExecution) -> _Run:
    document = yaml.safe_load(workflow.document)
    data: Any = json_format.MessageToDict(request.input) if request.HasField("input") else {}
    steer = data if isinstance(data, dict) else {}
    updates = [
        common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_PENDING),
        common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_RUNNING),
    ]
    tasks: dict[str, common_pb2.TaskStatus] = {}
    phase = common_pb2.EXECUTION_PHASE_COMPLETED
    error: common_pb2.ExecutionError | None = None

    def report(status: common_pb2.TaskStatus) -> None:
        copy = common_pb2.TaskStatus()
        copy.CopyFrom(status)
        tasks[status.id] = copy
        updates.append(common_pb2.ExecutionUpdate(tasks=[copy]))

    for index, item in enumerate(document.get("do", [])):
        ((name, task),) = item.items()
        status = common_pb2.TaskStatus(
            id=f"/do/{index}/{name}", name=name, type=_task_type(task), attempts=1
        )
        status.input.CopyFrom(_value(data))
        if "".join(str(task.get("if", "")).split()) == "${false}":
            status.phase = common_pb2.TASK_PHASE_SKIPPED
            report(status)
            continue
        status.phase = common_pb2.TASK_PHASE_RUNNING
        report(status)
        if "hang" in steer:
            phase = common_pb2.EXECUTION_PHASE_RUNNING
            break
        if "raise" in task:
            title = task["raise"]["error"].get("title", "raised")
            status.phase = common_pb2.TASK_PHASE_FAILED
            status.error.CopyFrom(
                common_pb2.ExecutionError(type="raised", message=title, step=status.id)
            )
            report(status)
            error = common_pb2.ExecutionError(
                type="WorkflowError", message=f"{title} at {status.id}", step="ExecuteWorkflow"
            )
            updates.append(common_pb2.ExecutionUpdate(error=error))
            phase = common_pb2.EXECUTION_PHASE_FAILED
            break
        if task.get("call") == "agent":
            status.agent_execution_id = f"aex-child-{index}"
            report(status)
            data = f"{task['with']['agent']} says: {task['with']['message']}"
        elif isinstance(task.get("set"), dict):
            data = task["set"]
        status.phase = common_pb2.TASK_PHASE_COMPLETED
        status.output.CopyFrom(_value(data))
        report(status)

    status_message = workflow_execution_pb2.WorkflowExecutionStatus(
        phase=phase, tasks=list(tasks.values())
    )
    if phase == common_pb2.EXECUTION_PHASE_COMPLETED:
        updates.append(common_pb2.ExecutionUpdate(workflow_output=_value(data)))
        status_message.output.CopyFrom(_value(data))
    if error is not None:
        status_message.error.CopyFrom(error)
    if phase != common_pb2.EXECUTION_PHASE_RUNNING:
        updates.append(common_pb2.ExecutionUpdate(phase=phase))
    events = []
    current = common_pb2.EXECUTION_PHASE_UNSPECIFIED
    for sequence, update in enumerate(updates, start=1):
        current = update.phase or current
        events.append(_event(execution_id, sequence, update, current))
    status_message.last_sequence = len(events)
    execution = WorkflowExecution(
        id=execution_id,
        workflow=workflow.name,
        status=status_message,
        workflow_id=f"workflow-execution/{execution_id}",
        document=workflow.document,
    )
    if request.HasField("input"):
        execution.input.CopyFrom(request.input)
    execution.create_time.FromSeconds(1_700_000_000)
    return _Run(execution, events, flaky="flaky" in steer)


def add_to_server(server: grpc.Server, state: WorkflowState) -> None:
    """Register both workflow services on a server.

    Args:
        server: A not yet started server.
        state: The state they share.

    """
    workflow_pb2_grpc.add_WorkflowServiceServicer_to_server(FakeWorkflowService(state), server)
    workflow_execution_pb2_grpc.add_WorkflowExecutionServiceServicer_to_server(
        FakeWorkflowExecutionService(state), server
    )
