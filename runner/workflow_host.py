"""ExecuteWorkflow: runs a Serverless Workflow document with the DSL engine.

The host connects the engine to polyfleet: task reports go to RunnerService as they
happen, checkpoints are stored in the orchestrator and referenced from heartbeats (so a
retried attempt on another runner resumes
after the last completed task), and `call: agent` runs a child agent execution
through the orchestrator's API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
from google.protobuf import json_format, struct_pb2
from temporalio import activity
from temporalio.exceptions import ApplicationError

from polyfleet.config import RunnerSettings
from polyfleet.v1 import activities_pb2, agent_execution_pb2, common_pb2
from runner.dsl import (
    RUNTIME,
    Engine,
    InvalidDocumentError,
    ResumeError,
    TaskReport,
    WorkflowError,
    load_document,
)
from runner.graphton.progress import ProgressReporter
from runner.graphton.secrets import Secrets
from runner.heartbeat import heartbeating
from runner.reporter import RunnerClient

if TYPE_CHECKING:
    from polyfleet.v1.agent_execution_pb2_grpc import AgentExecutionServiceAsyncStub

logger = logging.getLogger(__name__)

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
_TERMINAL_AGENT_PHASES = (
    common_pb2.EXECUTION_PHASE_COMPLETED,
    common_pb2.EXECUTION_PHASE_FAILED,
    common_pb2.EXECUTION_PHASE_CANCELLED,
)


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


def task_status(
    report: TaskReport, agent_execution_id: str = "", limit: int = 256 * 1024
) -> common_pb2.TaskStatus:
    """Convert an engine report into the TaskStatus of the execution's status."""
    status = common_pb2.TaskStatus(
        id=report.id,
        name=report.name,
        type=report.type,
        phase=_TASK_PHASES.get(report.phase, common_pb2.TASK_PHASE_UNSPECIFIED),
        attempts=report.attempts,
        agent_execution_id=agent_execution_id,
    )
    if report.input is not None:
        status.input.CopyFrom(_bounded(report.input, limit))
    if report.output is not None:
        status.output.CopyFrom(_bounded(report.output, limit))
    if report.error is not None:
        status.error.CopyFrom(
            common_pb2.ExecutionError(
                type=report.error.type, message=str(report.error), step=report.id
            )
        )
    _timestamp(report.start_time, status.start_time)
    _timestamp(report.end_time, status.end_time)
    return status


class _Hooks:
    """The engine's view of polyfleet for one activity attempt."""

    def __init__(
        self,
        execution_id: str,
        progress: ProgressReporter,
        agents: AgentExecutionServiceAsyncStub,
        client: RunnerClient,
        sequence: int,
    ) -> None:
        self._execution_id = execution_id
        self._client = client
        self.sequence = sequence
        self._progress = progress
        self._agents = agents
        self._last: dict[str, TaskReport] = {}
        self._links: dict[str, str] = {}
        self.checkpoint_ref: dict[str, Any] | None = None
        self.value_limit = 256 * 1024
        self.completed_tasks = 0

    def details(self) -> Sequence[Any]:
        return () if self.checkpoint_ref is None else (self.checkpoint_ref,)

    def _send(self, report: TaskReport) -> None:
        status = task_status(report, self._links.get(report.id, ""), self.value_limit)
        self._progress.send(common_pb2.ExecutionUpdate(tasks=[status]))

    async def report(self, task: TaskReport) -> None:
        self._last[task.id] = task
        if task.phase == "COMPLETED":
            self.completed_tasks += 1
        self._send(task)

    async def checkpoint(self, state: dict[str, Any]) -> None:
        # The state can be as large as a task's output: it goes to the orchestrator's
        # store, and the heartbeat carries only a reference, well under Temporal's limit.
        self.sequence += 1
        data = json.dumps(state, separators=(",", ":")).encode()
        await self._client.put_checkpoint(self._execution_id, self.sequence, data)
        self.checkpoint_ref = {CHECKPOINT_REF: self.sequence}
        # Send it now rather than at the next beat: the SDK throttles the actual calls.
        activity.heartbeat(self.checkpoint_ref)

    async def call_agent(self, agent: str, message: str, task_id: str) -> Any:
        created = await self._agents.CreateAgentExecution(
            agent_execution_pb2.CreateAgentExecutionRequest(
                execution=agent_execution_pb2.AgentExecution(
                    agent=agent,
                    message=message,
                    labels={
                        "polyfleet.parent-execution": self._execution_id,
                        "polyfleet.parent-task": task_id.replace("/", ".").strip("."),
                    },
                )
            )
        )
        self._links[task_id] = created.id
        if task_id in self._last:
            self._send(self._last[task_id])
        try:
            done = await self._wait(created.id)
        except asyncio.CancelledError:
            # The child must not outlive the task that asked for it.
            await asyncio.shield(
                self._agents.CancelAgentExecution(
                    agent_execution_pb2.CancelAgentExecutionRequest(id=created.id)
                )
            )
            raise
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
            return json_format.MessageToDict(done.status.output)
        return done.status.output_text

    async def _wait(self, execution_id: str) -> agent_execution_pb2.AgentExecution:
        stream = self._agents.WatchAgentExecution(
            agent_execution_pb2.WatchAgentExecutionRequest(id=execution_id)
        )
        async for item in stream:
            if item.HasField("event") and item.event.phase in _TERMINAL_AGENT_PHASES:
                break
        return await self._agents.GetAgentExecution(
            agent_execution_pb2.GetAgentExecutionRequest(id=execution_id)
        )


class WorkflowHost:
    """Runs ExecuteWorkflow attempts."""

    def __init__(
        self,
        client: RunnerClient,
        agents: AgentExecutionServiceAsyncStub,
        settings: RunnerSettings,
    ) -> None:
        self._client = client
        self._agents = agents
        self._settings = settings

    async def _resume_state(self, execution_id: str) -> tuple[dict[str, Any] | None, int]:
        """The checkpoint to resume from (None for a first attempt) and its sequence."""
        reference = _checkpoint_ref(activity.info().heartbeat_details)
        if not reference:
            return None, 0
        stored = await self._client.get_checkpoint(execution_id)
        # A stored checkpoint newer than the reference is valid too: it was written
        # after its task completed, and only the heartbeat carrying it was lost.
        if not stored.found or stored.sequence < reference:
            raise ApplicationError(
                f"checkpoint {reference} of execution {execution_id} is missing from the "
                "orchestrator's store",
                type="InvalidWorkflowDefinition",
                non_retryable=True,
            )
        state: dict[str, Any] = json.loads(stored.data)
        return state, stored.sequence

    def _env(self) -> Mapping[str, str]:
        return {
            name: os.environ[name] for name in self._settings.workflow_env if name in os.environ
        }

    async def run(
        self, params: activities_pb2.ExecuteWorkflowInput, report_prefix: str
    ) -> activities_pb2.ExecuteWorkflowOutput:
        """Run (or resume) one workflow execution and report its output."""
        execution_id = params.execution_id
        context = await self._client.workflow_context(execution_id)
        execution = context.execution
        text = execution.document or context.workflow.document
        try:
            document = load_document(text)
        except InvalidDocumentError as err:
            raise ApplicationError(
                str(err), type="InvalidWorkflowDefinition", non_retryable=True
            ) from None
        declared = document.get("use", {}).get("secrets", []) if isinstance(document, dict) else []
        secrets = Secrets.load(
            declared,
            use_environment=self._settings.secrets_from_environment,
            secrets_file=self._settings.secrets_file,
        )
        resume, sequence = await self._resume_state(execution_id)
        progress = ProgressReporter(
            self._client,
            execution_id,
            report_prefix,
            self._settings.delta_flush_interval.total_seconds(),
        )
        progress.scrub = secrets.scrub
        hooks = _Hooks(execution_id, progress, self._agents, self._client, sequence)
        hooks.value_limit = self._settings.task_value_max_bytes
        workflow_input = json_format.MessageToDict(execution.input)
        async with progress, httpx.AsyncClient(timeout=None) as http:
            if resume is None:
                progress.send(common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_RUNNING))
            else:
                logger.info("resuming from checkpoint", extra={"execution_id": execution_id})
            async with heartbeating(self._settings.heartbeat_interval, hooks.details):
                try:
                    engine = Engine(
                        document,
                        hooks,
                        http=http,
                        env=self._env(),
                        secrets=secrets.resolved(),
                        resume=resume,
                    )
                    output = await engine.run(workflow_input)
                except InvalidDocumentError as err:
                    raise ApplicationError(
                        str(err), type="InvalidWorkflowDefinition", non_retryable=True
                    ) from None
                except ResumeError as err:
                    raise ApplicationError(
                        f"cannot resume from the checkpoint: {err}",
                        type="InvalidWorkflowDefinition",
                        non_retryable=True,
                    ) from None
                except WorkflowError as err:
                    raise ApplicationError(
                        str(err), type="WorkflowError", non_retryable=True
                    ) from None
            progress.send(common_pb2.ExecutionUpdate(workflow_output=to_value(output)))
        return activities_pb2.ExecuteWorkflowOutput(completed_tasks=hooks.completed_tasks)


def _checkpoint_ref(details: Sequence[Any]) -> int:
    # Heartbeat details of an earlier attempt: a reference to its last checkpoint.
    if details and isinstance(details[-1], dict):
        return int(details[-1].get(CHECKPOINT_REF, 0))
    return 0
