"""Workflow-execution test fixtures: the test HTTP server, a runnerless fleet, helpers."""

from __future__ import annotations

import os
import signal
import textwrap
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from google.protobuf import json_format, struct_pb2
from temporalio.client import Client

from polyfleet.config import ExecutionSettings
from polyfleet.v1 import common_pb2, workflow_execution_pb2, workflow_pb2
from tests.conftest import Fleet, start_fleet, stopping
from tests.helpers import assert_eventually, wait_terminal
from tests.http_server import Server
from tests.processes import runner_process

# Runner processes started by these tests take workflow activities only.
ONLY_WORKFLOWS = {"POLYFLEET_RUNNER_AGENTS": "false"}


@pytest.fixture(scope="module")
def _server() -> Iterator[Server]:
    server = Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def http(_server: Server) -> Server:
    """The test HTTP server with its counters cleared."""
    _server.reset()
    return _server


@pytest_asyncio.fixture
async def runnerless(temporal_client: Client, tmp_path: Path) -> AsyncIterator[Fleet]:
    """An orchestrator without a runner that gives up on a silent activity after 3 s."""
    executions = ExecutionSettings(activity_heartbeat_timeout=timedelta(seconds=3))
    fleet = await start_fleet(temporal_client, tmp_path, with_runner=False, executions=executions)
    async with stopping(fleet):
        yield fleet


async def heartbeat_details(fleet: Fleet, workflow_id: str) -> int:
    """How many details the pending activity's last heartbeat carried (0: none, or none yet)."""
    description = await fleet.temporal.get_workflow_handle(workflow_id).describe()
    pending = description.raw_description.pending_activities
    return len(pending[0].heartbeat_details.payloads) if pending else 0


async def resume_after_sigkill(
    fleet: Fleet, logs: Path, http: Server, held: str, workflow: str, data: Any = None
) -> tuple[workflow_execution_pb2.WorkflowExecution, workflow_execution_pb2.WorkflowExecution]:
    """Run ``workflow`` on runner process A, SIGKILL it mid-task, finish it on runner B.

    A dies while its request to ``/hold/{held}`` is in flight and a checkpoint has reached
    Temporal with a heartbeat; ``logs`` is the folder of the runners' logs.

    Returns:
        The execution as created, and as it ended.

    """

    async def calls() -> int:
        return http.calls[held]

    async with runner_process(fleet, logs / "runner-a.log", **ONLY_WORKFLOWS) as a:
        created = await start(fleet, workflow, data)
        await assert_eventually(calls, lambda n: n == 1, timeout=30)
        await assert_eventually(
            lambda: heartbeat_details(fleet, created.workflow_id), lambda n: n > 0
        )
        os.kill(a.pid, signal.SIGKILL)
        a.wait(10)
    async with runner_process(fleet, logs / "runner-b.log", **ONLY_WORKFLOWS):
        return created, await finish(fleet, created.id, timeout=60)


# A workflow body whose one task raises a problem (type, status 422, title, detail).
RAISE_BAD_ORDER = """
do:
  - check:
      raise:
        error:
          type: https://example.com/errors/bad-order
          status: 422
          title: Bad order
          detail: order is empty
"""


def document(name: str, body: str) -> str:
    """A workflow document with the standard header and ``body`` (YAML, dedented)."""
    header = f'document: {{dsl: "1.0.0", namespace: test, name: {name}, version: "1.0.0"}}\n'
    return header + textwrap.dedent(body)


async def apply_workflow(fleet: Fleet, name: str, body: str) -> workflow_pb2.Workflow:
    """Apply a workflow resource."""
    return await fleet.workflows.ApplyWorkflow(
        workflow_pb2.ApplyWorkflowRequest(
            workflow=workflow_pb2.Workflow(name=name, document=document(name, body))
        )
    )


async def start(
    fleet: Fleet, workflow: str, data: dict[str, Any] | None = None
) -> workflow_execution_pb2.WorkflowExecution:
    """Create a workflow execution."""
    execution = workflow_execution_pb2.WorkflowExecution(workflow=workflow)
    if data:
        execution.input.CopyFrom(json_format.ParseDict(data, struct_pb2.Struct()))
    return await fleet.workflow_executions.CreateWorkflowExecution(
        workflow_execution_pb2.CreateWorkflowExecutionRequest(execution=execution)
    )


async def get(fleet: Fleet, execution_id: str) -> workflow_execution_pb2.WorkflowExecution:
    """Read a workflow execution."""
    return await fleet.workflow_executions.GetWorkflowExecution(
        workflow_execution_pb2.GetWorkflowExecutionRequest(id=execution_id)
    )


async def finish(
    fleet: Fleet, execution_id: str, timeout: float = 60
) -> workflow_execution_pb2.WorkflowExecution:
    """Wait for the terminal state."""
    return await wait_terminal(fleet.client.workflow_executions, execution_id, timeout)


def output(execution: workflow_execution_pb2.WorkflowExecution) -> Any:
    """The workflow's output as plain Python data."""
    return json_format.MessageToDict(execution.status.output)


def tasks(execution: workflow_execution_pb2.WorkflowExecution) -> dict[str, common_pb2.TaskStatus]:
    """Task statuses by id."""
    return {task.id: task for task in execution.status.tasks}
