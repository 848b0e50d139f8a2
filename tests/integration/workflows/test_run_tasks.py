"""`run` through a real fleet: child workflow executions, and shell processes on the runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from temporalio.client import Client

from polyfleet.config import RunnerSettings
from polyfleet.error_details import field_violations
from polyfleet.v1 import common_pb2, runner_pb2, runner_pb2_grpc, workflow_execution_pb2
from tests.conftest import Fleet, start_fleet, stopping
from tests.helpers import assert_eventually
from tests.http_server import Server
from tests.integration.workflows.conftest import (
    apply_workflow,
    finish,
    get,
    output,
    resume_after_sigkill,
    start,
    tasks,
)

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED
CANCELLED = common_pb2.EXECUTION_PHASE_CANCELLED
FAILED = common_pb2.EXECUTION_PHASE_FAILED

CHILD = """
do:
  - double:
      set:
        doubled: ${ .n * 2 }
"""


@pytest_asyncio.fixture
async def shell_fleet(temporal_client: Client, tmp_path: Path) -> AsyncIterator[Fleet]:
    """A fleet whose runner allows `run: shell`."""
    runner = RunnerSettings(heartbeat_interval=timedelta(seconds=1), allow_run=["shell"])
    async with stopping(await start_fleet(temporal_client, tmp_path, runner=runner)) as fleet:
        yield fleet


async def _child_of(fleet: Fleet, parent_id: str, task_id: str) -> str:
    return (
        tasks(await get(fleet, parent_id))
        .get(task_id, common_pb2.TaskStatus())
        .workflow_execution_id
    )


async def _children(fleet: Fleet, workflow: str) -> list[workflow_execution_pb2.WorkflowExecution]:
    listed = await fleet.workflow_executions.ListWorkflowExecutions(
        workflow_execution_pb2.ListWorkflowExecutionsRequest(workflow=workflow)
    )
    return list(listed.executions)


async def test_a_parent_runs_a_child_workflow_and_gets_its_output(fleet: Fleet) -> None:
    await apply_workflow(fleet, "child", CHILD)
    await apply_workflow(
        fleet,
        "parent",
        """
        do:
          - sub:
              run:
                workflow:
                  namespace: test
                  name: child
                  version: "1.0.0"
                  input: {n: "${ .n }"}
          - after:
              set: {got: "${ .doubled }"}
        """,
    )
    parent = await start(fleet, "parent", {"n": 21})
    done = await finish(fleet, parent.id)
    assert done.status.phase == COMPLETED, done.status.error
    assert output(done) == {"got": 42}
    child_id = tasks(done)["/do/0/sub"].workflow_execution_id
    assert child_id.startswith("wex-")
    assert tasks(done)["/do/0/sub"].type == "run:workflow"
    child = await get(fleet, child_id)
    assert child.workflow == "child"
    assert child.status.phase == COMPLETED
    assert dict(child.labels) == {
        "polyfleet.parent-execution": parent.id,
        "polyfleet.parent-task": "do.0.sub",
    }


async def test_await_false_outputs_the_child_id_at_once(fleet: Fleet) -> None:
    await apply_workflow(fleet, "child", CHILD)
    await apply_workflow(
        fleet,
        "fire",
        """
        do:
          - sub:
              run:
                workflow: {name: child, input: {n: 1}}
                await: false
        """,
    )
    done = await finish(fleet, (await start(fleet, "fire")).id)
    assert done.status.phase == COMPLETED, done.status.error
    child_id = tasks(done)["/do/0/sub"].workflow_execution_id
    assert output(done) == {"id": child_id, "workflow": "child"}
    child = await finish(fleet, child_id)
    assert child.status.phase == COMPLETED
    assert output(child) == {"doubled": 2}


async def test_cancelling_the_parent_cancels_the_child(fleet: Fleet) -> None:
    await apply_workflow(fleet, "sleeper", "do:\n  - nap:\n      wait: PT1H\n")
    await apply_workflow(
        fleet, "waits", "do:\n  - sub:\n      run:\n        workflow: {name: sleeper}\n"
    )
    parent = await start(fleet, "waits")
    child_id = await assert_eventually(lambda: _child_of(fleet, parent.id, "/do/0/sub"), bool)
    await fleet.workflow_executions.CancelWorkflowExecution(
        workflow_execution_pb2.CancelWorkflowExecutionRequest(id=parent.id)
    )
    assert (await finish(fleet, parent.id)).status.phase == CANCELLED
    assert (await finish(fleet, child_id)).status.phase == CANCELLED


async def test_a_child_that_fails_fails_the_task_naming_it(fleet: Fleet) -> None:
    await apply_workflow(
        fleet,
        "broken",
        "do:\n  - boom:\n      raise:\n        error: {type: https://x/bad, status: 422}\n",
    )
    await apply_workflow(
        fleet, "calls-broken", "do:\n  - sub:\n      run:\n        workflow: {name: broken}\n"
    )
    done = await finish(fleet, (await start(fleet, "calls-broken")).id)
    assert done.status.phase == FAILED
    child_id = tasks(done)["/do/0/sub"].workflow_execution_id
    assert f"workflow execution {child_id} (broken) ended FAILED" in done.status.error.message
    assert done.status.error.instance == "/do/0/sub"


async def test_apply_rejects_unknown_and_self_running_workflows(fleet: Fleet) -> None:
    for name, target in (("lonely", "ghost"), ("loops", "loops")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await apply_workflow(
                fleet, name, f"do:\n  - sub:\n      run:\n        workflow: {{name: {target}}}\n"
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in field_violations(refused.value)] == [
            "workflow.document/do/0/sub/run/workflow/name"
        ]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await apply_workflow(
            fleet, "boxed", "do:\n  - c:\n      run:\n        container: {image: alpine}\n"
        )
    assert "no container runtime" in (refused.value.details() or "")


async def test_shell_is_refused_by_a_runner_that_does_not_allow_it(fleet: Fleet) -> None:
    await apply_workflow(
        fleet,
        "shells",
        "do:\n  - first:\n      set: {a: 1}\n  - sh:\n      run:\n        shell: {command: id}\n",
    )
    done = await finish(fleet, (await start(fleet, "shells")).id)
    assert done.status.phase == FAILED
    assert "POLYFLEET_RUNNER_ALLOW_RUN includes shell" in done.status.error.message
    assert done.status.error.instance == "/do/1/sh"
    assert "/do/0/first" not in tasks(done)  # refused before any task ran


async def test_shell_runs_on_a_runner_that_allows_it(shell_fleet: Fleet) -> None:
    await apply_workflow(
        shell_fleet,
        "greets",
        """
        do:
          - hello:
              run:
                shell:
                  command: printf '%s, %s' "$GREETING"
                  arguments: ["${ .who }"]
                  environment: {GREETING: Hello}
                return: all
        """,
    )
    done = await finish(shell_fleet, (await start(shell_fleet, "greets", {"who": "ann"})).id)
    assert done.status.phase == COMPLETED, done.status.error
    assert output(done) == {"code": 0, "stdout": "Hello, ann", "stderr": ""}


async def test_a_runner_crash_in_a_subflow_repeats_only_the_task_in_flight(
    runnerless: Fleet, tmp_path: Path, http: Server
) -> None:
    await apply_workflow(
        runnerless,
        "held-child",
        f"""
        do:
          - step:
              call: http
              with: {{method: get, endpoint: "{http.url}/hold/child-step"}}
        """,
    )
    await apply_workflow(
        runnerless,
        "resumes",
        f"""
        do:
          - one:
              call: http
              with: {{method: get, endpoint: "{http.url}/count/one"}}
          - sub:
              run:
                workflow: {{name: held-child}}
          - last:
              set: {{child: "${{ . }}"}}
        """,
    )
    _, done = await resume_after_sigkill(runnerless, tmp_path, http, "child-step", "resumes")
    assert done.status.phase == COMPLETED, done.status.error
    assert http.calls["one"] == 1  # completed before the crash: not run again
    assert http.calls["child-step"] == 2  # the child's task in flight ran again
    children = await _children(runnerless, "held-child")
    assert [c.id for c in children] == [tasks(done)["/do/1/sub"].workflow_execution_id]
    assert output(done) == {"child": {"name": "child-step", "held": False}}


@pytest_asyncio.fixture
async def idle(temporal_client: Client, tmp_path: Path) -> AsyncIterator[Fleet]:
    """A fleet without a runner or credentials: RunnerService calls made by the test."""
    fleet = await start_fleet(temporal_client, tmp_path, with_runner=False, secure=False)
    async with stopping(fleet):
        await apply_workflow(fleet, "sleeper", "do:\n  - nap:\n      wait: PT1H\n")
        yield fleet


async def _create_child(
    fleet: Fleet, parent_id: str, request_id: str = "attempt-1", **fields: str
) -> workflow_execution_pb2.WorkflowExecution:
    request = runner_pb2.CreateChildWorkflowExecutionRequest(
        execution_id=parent_id,
        task_id="/do/0/sub",
        workflow=fields.get("workflow", "sleeper"),
        version=fields.get("version", ""),
        namespace=fields.get("namespace", ""),
        request_id=request_id,
    )
    return await runner_pb2_grpc.RunnerServiceStub(fleet.channel).CreateChildWorkflowExecution(
        request
    )


async def test_child_workflow_rpcs_are_idempotent_checked_and_bound_to_the_parent(
    idle: Fleet,
) -> None:
    parent = await start(idle, "sleeper")
    child = await _create_child(idle, parent.id)
    assert child.labels["polyfleet.parent-execution"] == parent.id
    assert (await _create_child(idle, parent.id)).id == child.id  # a retried attempt
    assert (await _create_child(idle, parent.id, "attempt-2")).id != child.id
    assert (await _create_child(idle, parent.id, version="1.0.0", namespace="test")).id
    for field, value in (("version", "2.0.0"), ("namespace", "other")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _create_child(idle, parent.id, **{field: value})
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in field_violations(refused.value)] == [field]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _create_child(idle, parent.id, workflow="ghost")
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    runner = runner_pb2_grpc.RunnerServiceStub(idle.channel)
    other = await start(idle, "sleeper")
    cancel = runner_pb2.CancelChildWorkflowExecutionRequest(
        execution_id=other.id, child_execution_id=child.id
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await runner.CancelChildWorkflowExecution(cancel)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    watch = runner_pb2.WatchChildWorkflowExecutionRequest(
        execution_id=other.id, child_execution_id=child.id
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in runner.WatchChildWorkflowExecution(watch):
            pass
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    cancel.execution_id = parent.id
    await runner.CancelChildWorkflowExecution(cancel)
    assert (await finish(idle, child.id)).status.phase == CANCELLED
