"""ExecuteWorkflow: runs a Serverless Workflow document with the DSL engine.

The host connects the engine to polyfleet: task reports go to RunnerService as they
happen, checkpoints are stored in the orchestrator after each completed task (so a retried
attempt on another runner resumes after the last completed task, whether or not a heartbeat
carried the checkpoint's reference), `call: agent` runs a child agent execution and
`run: workflow` a child workflow execution through RunnerService (see
runner/child_executions.py), and `run: shell|script` start processes only when
POLYFLEET_RUNNER_ALLOW_RUN allows them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any, TypeVar

import grpc
import httpx
from google.protobuf import json_format, struct_pb2
from opentelemetry.trace import Span, StatusCode
from temporalio import activity
from temporalio.exceptions import ApplicationError

from polyfleet import contract
from polyfleet.config import RunnerSettings
from polyfleet.dsl import (
    CONFIGURATION,
    RUNTIME,
    DslError,
    Engine,
    EventBatch,
    InvalidDocumentError,
    ResumeError,
    TaskReport,
    WorkflowError,
    load_document,
)
from polyfleet.dsl.reports import ChildWorkflow
from polyfleet.dsl.runtime import ProcessLimits
from polyfleet.dsl.validation import runner_requirements
from polyfleet.structs import struct_to_dict, value_to_data
from polyfleet.telemetry import tracing
from polyfleet.telemetry.metrics import WORKFLOW_TASK_DURATION, WORKFLOW_TASKS
from polyfleet.v1 import activities_pb2, common_pb2
from runner.child_executions import ChildAgents, ChildExecutions, ChildWorkflows
from runner.errors import OutputTooLargeError
from runner.heartbeat import heartbeating
from runner.progress import ProgressReporter
from runner.runner_client import RunnerClient
from runner.secrets import Secrets
from runner.workflow_events import WorkflowEvents

logger = logging.getLogger(__name__)

_E = TypeVar("_E", bound=contract.Execution)

# Key of the checkpoint reference in heartbeat details.
CHECKPOINT_REF = "checkpointSequence"

_TASK_PHASES = {
    "PENDING": common_pb2.TASK_PHASE_PENDING,
    "RUNNING": common_pb2.TASK_PHASE_RUNNING,
    "COMPLETED": common_pb2.TASK_PHASE_COMPLETED,
    "FAILED": common_pb2.TASK_PHASE_FAILED,
    "SKIPPED": common_pb2.TASK_PHASE_SKIPPED,
    "CANCELLED": common_pb2.TASK_PHASE_CANCELLED,
}


def to_value(data: Any) -> struct_pb2.Value:
    """A JSON-compatible Python value as a protobuf Value."""
    return _parse(json.dumps(data, default=str))


def _parse(text: str) -> struct_pb2.Value:
    value = struct_pb2.Value()
    json_format.Parse(text, value)
    return value


def _timestamp(when: datetime | None, target: Any) -> None:
    if when is not None:
        target.FromDatetime(when)


def _bounded(data: Any, limit: int) -> struct_pb2.Value:
    # A task's input or output in the status is for people watching; past the limit it
    # is replaced by a note (the data itself still flows to the next task).
    text = json.dumps(data, default=str)
    if len(text) > limit:
        return to_value(f"[{len(text)} bytes, over the {limit}-byte status limit: not shown]")
    return _parse(text)


def problem_error(error: WorkflowError, *, type: str, step: str) -> common_pb2.ExecutionError:
    """An ExecutionError carrying a workflow error's RFC 7807 fields as data.

    Args:
        error: The problem (a DSL `raise`, an HTTP call's error, ...).
        type: The ExecutionError's type: the problem's type URI for a task, the stable
            ``WorkflowError`` for the execution.
        step: The task (JSON pointer) or activity that failed.
    """
    return common_pb2.ExecutionError(
        type=type,
        message=str(error),
        step=step,
        status=_problem_status(error.status),
        title=error.title,
        detail=error.detail,
        instance=error.instance,
    )


def _problem_status(status: int | None) -> int:
    # A status outside int32 (a `raise` may say anything) is not a status code: drop it
    # rather than fail the report.
    return status if status is not None and 0 <= status <= 2**31 - 1 else 0


def task_status(
    report: TaskReport,
    agent_execution_id: str = "",
    limit: int = 256 * 1024,
    workflow_execution_id: str = "",
) -> common_pb2.TaskStatus:
    """Convert an engine report into the TaskStatus of the execution's status."""
    status = common_pb2.TaskStatus(
        id=report.id,
        name=report.name,
        type=report.type,
        phase=_TASK_PHASES.get(report.phase, common_pb2.TASK_PHASE_UNSPECIFIED),
        attempts=report.attempts,
        agent_execution_id=agent_execution_id,
        workflow_execution_id=workflow_execution_id,
    )
    if report.input is not None:
        status.input.CopyFrom(_bounded(report.input, limit))
    if report.output is not None:
        status.output.CopyFrom(_bounded(report.output, limit))
    if report.error is not None:
        status.error.CopyFrom(problem_error(report.error, type=report.error.type, step=report.id))
    _timestamp(report.start_time, status.start_time)
    _timestamp(report.end_time, status.end_time)
    return status


class _Hooks:
    """The engine's view of polyfleet for one activity attempt."""

    def __init__(
        self,
        execution_id: str,
        progress: ProgressReporter,
        client: RunnerClient,
        sequence: int,
    ) -> None:
        self._execution_id = execution_id
        self._client = client
        self.sequence = sequence
        self._progress = progress
        self._agents = ChildAgents(client, execution_id)
        self._events = WorkflowEvents(client, execution_id)
        self._workflows = ChildWorkflows(client, execution_id)
        self._last: dict[str, TaskReport] = {}
        self._links: dict[str, str] = {}
        self._workflow_links: dict[str, str] = {}
        self.checkpoint_ref: dict[str, Any] | None = None
        self.value_limit = 256 * 1024
        self.completed_tasks = 0
        # Test hook (see WorkflowHost): called once a checkpoint is stored.
        self.after_checkpoint: Callable[[int], None] | None = None
        # The orchestrator's limit on a task result (bytes of JSON); 0: none.
        self.max_output_bytes = 0
        # A span per task run, open from RUNNING to its end (docs/observability.md).
        self._spans: dict[str, Span] = {}

    def details(self) -> Sequence[Any]:
        return () if self.checkpoint_ref is None else (self.checkpoint_ref,)

    def _send(self, report: TaskReport) -> None:
        status = task_status(
            report,
            self._links.get(report.id, ""),
            self.value_limit,
            self._workflow_links.get(report.id, ""),
        )
        self._progress.send(common_pb2.ExecutionUpdate(tasks=[status]))

    async def report(self, task: TaskReport) -> None:
        if task.output is not None and self.max_output_bytes:
            # Checked before the result reaches a checkpoint, which would carry it to the
            # orchestrator in a message over gRPC's limit and fail with a raw RPC error.
            size = len(json.dumps(task.output, default=str).encode())
            OutputTooLargeError.check(f"the result of task {task.id}", size, self.max_output_bytes)
        self._last[task.id] = task
        if task.phase == "COMPLETED":
            self.completed_tasks += 1
        if task.phase not in ("PENDING", "RUNNING"):
            WORKFLOW_TASKS.add(1, task_type=task.type, result=task.phase)
            if task.start_time is not None and task.end_time is not None:
                WORKFLOW_TASK_DURATION.record(
                    max(0.0, (task.end_time - task.start_time).total_seconds()),
                    task_type=task.type,
                    result=task.phase,
                )
        self._trace(task)
        self._send(task)

    def _trace(self, task: TaskReport) -> None:
        if not tracing.enabled():
            return
        span = self._spans.get(task.id)
        if span is None:
            # A task's span is a child of the innermost open task it runs in (its ID, a
            # JSON pointer, extends that task's), else of the activity's.
            enclosing = max(
                (key for key in self._spans if task.id.startswith(f"{key}/")),
                key=len,
                default="",
            )
            attributes = {
                "polyfleet.task.id": task.id,
                "polyfleet.task.name": task.name,
                "polyfleet.task.type": task.type,
            }
            with tracing.within(self._spans[enclosing]) if enclosing else nullcontext():
                span = tracing.start_span("polyfleet.task", attributes)
            self._spans[task.id] = span
        span.set_attribute("polyfleet.task.attempts", task.attempts)
        if task.phase == "RUNNING":
            return
        del self._spans[task.id]
        span.set_attribute("polyfleet.task.phase", task.phase)
        if task.phase in ("FAILED", "CANCELLED"):
            span.set_status(StatusCode.ERROR, task.error.type if task.error else task.phase)
        span.end()

    def end_spans(self) -> None:
        """End the spans of tasks the attempt left running (it failed or was cancelled)."""
        for span in self._spans.values():
            span.set_status(StatusCode.ERROR, "ended with the activity")
            span.end()
        self._spans.clear()

    async def checkpoint(self, state: dict[str, Any]) -> None:
        # The state can be as large as a task's output: it goes to the orchestrator's
        # store, and the heartbeat carries only a reference, well under Temporal's limit.
        self.sequence += 1
        data = json.dumps(state, separators=(",", ":")).encode()
        await self._client.put_checkpoint(self._execution_id, self.sequence, data)
        if self.after_checkpoint:
            self.after_checkpoint(self.sequence)
        self.checkpoint_ref = {CHECKPOINT_REF: self.sequence}
        # Send it now rather than at the next beat: the SDK throttles the actual calls.
        activity.heartbeat(self.checkpoint_ref)

    async def emit_event(self, event: dict[str, Any], task_id: str, attempt: int) -> dict[str, Any]:
        return await self._events.emit(event, task_id, attempt)

    async def receive_events(self, after: int, wait: float) -> EventBatch:
        return await self._events.receive(after, wait)

    async def _start_child(
        self, task_id: str, links: dict[str, str], create: Callable[[str], Awaitable[_E]]
    ) -> _E:
        """Create a task's child with ``create(request_id)``, and link the task to it.

        One child per attempt of the task (a `try` retries it under the same ID): another
        activity attempt (the runner died) finds the child this one started, unless this
        one cancelled it on its way out.
        """
        last = self._last.get(task_id)
        request_id = f"attempt-{last.attempts if last else 1}"
        # The child's trace is the task's: its API span is a child of the task's span.
        with tracing.within(self._spans[task_id]) if task_id in self._spans else nullcontext():
            created = await create(request_id)
            if (
                created.status.phase == common_pb2.EXECUTION_PHASE_CANCELLED
                and activity.in_activity()
            ):
                created = await create(f"{request_id}.activity-{activity.info().attempt}")
        links[task_id] = created.id
        if task_id in self._last:
            self._send(self._last[task_id])
        return created

    @staticmethod
    async def _child_result(children: ChildExecutions[_E], execution_id: str) -> _E:
        """Follow a child to its end (the watch resumes after a broken stream)."""
        try:
            return await children.watch(execution_id).result()
        except asyncio.CancelledError:
            # The child must not outlive the task that asked for it.
            await asyncio.shield(children.cancel(execution_id))
            raise

    async def call_agent(self, agent: str, message: str, task_id: str) -> Any:
        created = await self._start_child(
            task_id,
            self._links,
            lambda request_id: self._agents.create(task_id, agent, message, request_id),
        )
        done = await self._child_result(self._agents, created.id)
        if done.status.phase != common_pb2.EXECUTION_PHASE_COMPLETED:
            phase = common_pb2.ExecutionPhase.Name(done.status.phase)
            ended = phase.removeprefix("EXECUTION_PHASE_")
            raise WorkflowError(
                RUNTIME,
                title=f"agent execution {created.id} ended {ended}",
                detail=done.status.error.message,
                instance=task_id,
            )
        if done.status.HasField("output"):
            return struct_to_dict(done.status.output)
        return done.status.output_text

    async def run_workflow(self, workflow: ChildWorkflow, task_id: str) -> Any:
        child_input = struct_pb2.Struct()
        json_format.ParseDict(
            json.loads(json.dumps(workflow.input or {}, default=str)), child_input
        )
        names = (workflow.name, workflow.version, workflow.namespace)
        try:
            created = await self._start_child(
                task_id,
                self._workflow_links,
                lambda request_id: self._workflows.create(task_id, names, child_input, request_id),
            )
        except grpc.aio.AioRpcError as err:
            if err.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise
            # The document names a workflow that is not applied (any more), or another
            # version of it: running again will not help.
            raise WorkflowError(
                CONFIGURATION,
                400,
                title=f"cannot run workflow {workflow.name}",
                detail=err.details() or err.code().name,
                instance=task_id,
            ) from None
        if not workflow.wait:
            return created.id
        done = await self._child_result(self._workflows, created.id)
        if done.status.phase != common_pb2.EXECUTION_PHASE_COMPLETED:
            ended = contract.phase_name(done.status.phase)
            raise WorkflowError(
                RUNTIME,
                title=f"workflow execution {created.id} ({workflow.name}) ended {ended}",
                detail=done.status.error.message,
                instance=task_id,
            )
        return value_to_data(done.status.output) if done.status.HasField("output") else None


class WorkflowHost:
    """Runs ExecuteWorkflow attempts."""

    def __init__(
        self,
        client: RunnerClient,
        settings: RunnerSettings,
        *,
        after_checkpoint: Callable[[int], None] | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        # Tests kill the runner here: the checkpoint is stored, no heartbeat carried it yet.
        self._after_checkpoint = after_checkpoint

    async def _resume_state(
        self, execution_id: str, reference: int
    ) -> tuple[dict[str, Any] | None, int]:
        """The checkpoint to resume from (None if there is none yet) and its sequence.

        The stored checkpoint is the authority, not the heartbeat: heartbeats are throttled,
        so a runner can die after storing a checkpoint but before a heartbeat carried its
        ``reference``, and the next attempt must still skip the task that completed.
        """
        stored = await self._client.get_checkpoint(execution_id)
        # A stored checkpoint newer than the reference is valid too: it was written
        # after its task completed, and only the heartbeat carrying it was lost.
        if reference and (not stored.found or stored.sequence < reference):
            raise ApplicationError(
                f"checkpoint {reference} of execution {execution_id} is missing from the "
                "orchestrator's store",
                type=contract.INVALID_WORKFLOW_DEFINITION,
                non_retryable=True,
            )
        if not stored.found:
            return None, 0
        state: dict[str, Any] = json.loads(stored.data)
        return state, stored.sequence

    def _check_processes(self, document: Mapping[str, Any], functions: Mapping[str, Any]) -> None:
        """Fail before any task runs when the document starts processes this runner refuses.

        Raises:
            WorkflowError: Naming the first such task and POLYFLEET_RUNNER_ALLOW_RUN.
        """
        for kind, pointers in runner_requirements(document, functions).items():
            if kind not in self._settings.allow_run:
                raise WorkflowError(
                    CONFIGURATION,
                    400,
                    title=f"`run: {kind}` is not enabled on this runner",
                    detail=f"task {pointers[0]} runs a {kind} process: run this workflow on "
                    f"runners whose POLYFLEET_RUNNER_ALLOW_RUN includes {kind}",
                    instance=pointers[0],
                )

    def _env(self) -> Mapping[str, str]:
        return {
            name: os.environ[name] for name in self._settings.workflow_env if name in os.environ
        }

    async def run(
        self, params: activities_pb2.ExecuteWorkflowInput, report_prefix: str
    ) -> activities_pb2.ExecuteWorkflowOutput:
        """Run (or resume) one workflow execution and report its output."""
        execution_id = params.execution_id
        progress = ProgressReporter(
            self._client,
            execution_id,
            report_prefix,
            self._settings.delta_flush_interval.total_seconds(),
        )
        hooks = _Hooks(execution_id, progress, self._client, 0)
        hooks.value_limit = self._settings.task_value_max_bytes
        hooks.after_checkpoint = self._after_checkpoint
        reference = _checkpoint_ref(activity.info().heartbeat_details)
        if reference:
            # Until this attempt stores its own checkpoint, keep the earlier reference in
            # the heartbeat details: a heartbeat replaces them.
            hooks.checkpoint_ref = {CHECKPOINT_REF: reference}
        # Heartbeat from the first RunnerService call on: while the orchestrator restarts,
        # calls are retried and the heartbeat timeout must not end the attempt meanwhile.
        try:
            async with heartbeating(self._settings.heartbeat_interval, hooks.details):
                return await self._run(params, hooks, progress, reference)
        finally:
            hooks.end_spans()

    async def _run(
        self,
        params: activities_pb2.ExecuteWorkflowInput,
        hooks: _Hooks,
        progress: ProgressReporter,
        reference: int,
    ) -> activities_pb2.ExecuteWorkflowOutput:
        execution_id = params.execution_id
        context = await self._client.workflow_context(execution_id)
        execution = context.execution
        text = execution.document or context.workflow.document
        # The catalog and URL functions resolved when the workflow was applied, snapshotted
        # with the document (an execution created before the snapshot: the workflow's).
        resolved = (
            execution.resolved_functions
            if execution.document
            else context.workflow.resolved_functions
        )
        functions = {reference: json.loads(body) for reference, body in resolved.items()}
        try:
            document = load_document(text)
        except InvalidDocumentError as err:
            raise ApplicationError(
                str(err), type=contract.INVALID_WORKFLOW_DEFINITION, non_retryable=True
            ) from None
        declared = document.get("use", {}).get("secrets", []) if isinstance(document, dict) else []
        secrets = Secrets.load(
            declared,
            use_environment=self._settings.secrets_from_environment,
            secrets_file=self._settings.secrets_file,
        )
        resume, hooks.sequence = await self._resume_state(execution_id, reference)
        progress.redactor = secrets.redactor
        progress.max_output_bytes = hooks.max_output_bytes = context.max_output_bytes
        # Struct holds numbers as doubles: {"petId": 1} must reach the DSL as 1, not 1.0.
        workflow_input = struct_to_dict(execution.input)
        async with progress, httpx.AsyncClient(timeout=None) as http:
            if resume is None:
                progress.send(common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_RUNNING))
            else:
                logger.info(
                    "resuming from checkpoint %d",
                    hooks.sequence,
                    extra={"execution_id": execution_id},
                )
            try:
                self._check_processes(document, functions)
                engine = Engine(
                    document,
                    hooks,
                    http=http,
                    env=self._env(),
                    secrets=secrets.resolved(),
                    resume=resume,
                    functions=functions,
                    processes=ProcessLimits(
                        allow=frozenset(self._settings.allow_run),
                        max_seconds=self._settings.run_timeout.total_seconds(),
                        max_output_bytes=self._settings.run_output_max_bytes,
                    ),
                )
                output = await engine.run(workflow_input)
            except InvalidDocumentError as err:
                raise ApplicationError(
                    str(err), type=contract.INVALID_WORKFLOW_DEFINITION, non_retryable=True
                ) from None
            except ResumeError as err:
                raise ApplicationError(
                    f"cannot resume from the checkpoint: {err}",
                    type=contract.INVALID_WORKFLOW_DEFINITION,
                    non_retryable=True,
                ) from None
            except WorkflowError as err:
                # The problem travels as the failure's details, so the orchestrator records
                # it field by field in the execution's error.
                raise ApplicationError(
                    str(err), err.as_dict(), type=contract.WORKFLOW_ERROR, non_retryable=True
                ) from None
            except DslError as err:
                if isinstance(err.__cause__, OutputTooLargeError):
                    raise _too_large(err.__cause__) from None
                raise
            try:
                progress.send(common_pb2.ExecutionUpdate(workflow_output=to_value(output)))
            except OutputTooLargeError as err:
                raise _too_large(err) from None
        return activities_pb2.ExecuteWorkflowOutput(completed_tasks=hooks.completed_tasks)


def _too_large(err: OutputTooLargeError) -> ApplicationError:
    # Retrying produces the same value: fail the execution with the stable type.
    return ApplicationError(err.message, type=err.error_type, non_retryable=True)


def _checkpoint_ref(details: Sequence[Any]) -> int:
    # Heartbeat details of an earlier attempt: a reference to its last checkpoint.
    if details and isinstance(details[-1], dict):
        return int(details[-1].get(CHECKPOINT_REF, 0))
    return 0
