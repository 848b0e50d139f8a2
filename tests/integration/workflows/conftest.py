"""Workflow-execution test fixtures: the test HTTP server and request helpers."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2

from polyfleet.v1 import common_pb2, workflow_execution_pb2, workflow_pb2
from tests.conftest import Fleet
from tests.helpers import wait_terminal
from tests.http_server import Server


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
