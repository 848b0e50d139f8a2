"""Workflow executions end to end: API -> orchestrator workflow -> ExecuteWorkflow on a runner."""

from __future__ import annotations

import time

import grpc
import pytest

from polyfleet.error_details import field_violations
from polyfleet.v1 import (
    agent_execution_pb2,
    agent_pb2,
    common_pb2,
    workflow_execution_pb2,
    workflow_pb2,
)
from tests.conftest import Fleet, scripted_agent
from tests.helpers import assert_eventually
from tests.http_server import Server
from tests.integration.workflows.conftest import (
    RAISE_BAD_ORDER,
    apply_workflow,
    document,
    finish,
    get,
    output,
    start,
    tasks,
)

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED
FAILED = common_pb2.EXECUTION_PHASE_FAILED
TASK_COMPLETED = common_pb2.TASK_PHASE_COMPLETED


async def test_sequence_set_http_for_wait_switch_and_flow(fleet: Fleet, http: Server) -> None:
    await apply_workflow(
        fleet,
        "tour",
        f"""
        do:
          - greet:
              set:
                name: ${{ .name }}
          - fetch:
              call: http
              with:
                method: post
                endpoint: {http.url}/echo
                body:
                  name: ${{ .name }}
              output:
                as: "${{ {{name: .body.name}} }}"
          - loop:
              for:
                each: n
                in: ${{ [1, 2, 3] }}
              do:
                - add:
                    set:
                      total: ${{ (.total // 0) + $n }}
          - pause:
              wait: PT0.1S
          - check:
              switch:
                - big:
                    when: ${{ .total > 5 }}
                    then: done
                - otherwise:
                    then: continue
          - never:
              raise:
                error:
                  type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime
                  status: 500
                  title: unreachable
          - done:
              set:
                total: ${{ .total }}
                greeting: ${{ "hello " + $workflow.input.name }}
        """,
    )
    created = await start(fleet, "tour", {"name": "ada"})
    assert created.status.phase == common_pb2.EXECUTION_PHASE_PENDING
    done = await finish(fleet, created.id)
    assert done.status.phase == COMPLETED, done.status.error
    assert output(done) == {"total": 6, "greeting": "hello ada"}
    by_id = tasks(done)
    for task_id in ("/do/0/greet", "/do/1/fetch", "/do/2/loop", "/do/3/pause", "/do/6/done"):
        assert by_id[task_id].phase == TASK_COMPLETED, task_id
    assert by_id["/do/1/fetch"].type.startswith("call")
    assert "/do/5/never" not in by_id
    assert http.calls["echo"] == 1


async def test_integer_input_stays_an_integer_in_urls_and_expressions(
    fleet: Fleet, http: Server
) -> None:
    # Struct holds {"petId": 1} as 1.0: the DSL must still see 1, not call /count/1.0.
    await apply_workflow(
        fleet,
        "pets",
        f"""
        do:
          - fetch:
              call: http
              with:
                method: get
                endpoint: "{http.url}/count/{{petId}}"
          - label:
              set:
                fetched: ${{ .name }}
                label: ${{ "pet \\($workflow.input.petId)" }}
        """,
    )
    done = await finish(fleet, (await start(fleet, "pets", {"petId": 1})).id)
    assert done.status.phase == COMPLETED, done.status.error
    assert output(done) == {"fetched": "1", "label": "pet 1"}
    assert http.calls["1"] == 1


async def test_call_agent_answer_feeds_a_later_set(fleet: Fleet) -> None:
    await fleet.agents.ApplyAgent(
        agent_pb2.ApplyAgentRequest(
            agent=scripted_agent(**{"(?i)capital of france": "Paris is the capital."})
        )
    )
    await apply_workflow(
        fleet,
        "ask",
        """
        do:
          - ask:
              call: agent
              with:
                agent: assistant
                message: ${ "What is the capital of " + .country + "?" }
          - use:
              set:
                answer: ${ . }
                shout: ${ . | ascii_upcase }
        """,
    )
    done = await finish(fleet, (await start(fleet, "ask", {"country": "France"})).id)
    assert done.status.phase == COMPLETED, done.status.error
    assert output(done) == {"answer": "Paris is the capital.", "shout": "PARIS IS THE CAPITAL."}
    child_id = tasks(done)["/do/0/ask"].agent_execution_id
    assert child_id.startswith("aex-")
    child = await fleet.executions.GetAgentExecution(
        agent_execution_pb2.GetAgentExecutionRequest(id=child_id)
    )
    assert child.status.phase == COMPLETED
    assert child.labels["polyfleet.parent-execution"] == done.id
    assert child.labels["polyfleet.parent-task"] == "do.0.ask"


async def test_fork_runs_branches_concurrently_and_compete_cancels_the_loser(
    fleet: Fleet, http: Server
) -> None:
    await apply_workflow(
        fleet,
        "parallel",
        f"""
        do:
          - both:
              fork:
                branches:
                  - a:
                      call: http
                      with: {{method: get, endpoint: "{http.url}/slow/a?ms=700"}}
                  - b:
                      call: http
                      with: {{method: get, endpoint: "{http.url}/slow/b?ms=700"}}
        """,
    )
    done = await finish(fleet, (await start(fleet, "parallel")).id)
    assert done.status.phase == COMPLETED, done.status.error
    assert http.max_in_flight == 2
    assert sorted(http.completed) == ["a", "b"]

    http.reset()
    await apply_workflow(
        fleet,
        "race",
        f"""
        do:
          - race:
              fork:
                compete: true
                branches:
                  - quick:
                      call: http
                      with: {{method: get, endpoint: "{http.url}/slow/quick?ms=200"}}
                  - slowpoke:
                      call: http
                      with: {{method: get, endpoint: "{http.url}/slow/slowpoke?ms=20000"}}
        """,
    )
    began = time.monotonic()
    done = await finish(fleet, (await start(fleet, "race")).id)
    assert done.status.phase == COMPLETED, done.status.error
    assert time.monotonic() - began < 15
    assert output(done) == {"name": "quick"}
    await assert_eventually(
        lambda: _async(http.disconnected), lambda d: "slowpoke" in d, timeout=10
    )


async def _async(value: list[str]) -> list[str]:
    return list(value)


RETRY = """
do:
  - guarded:
      try:
        - callApi:
            call: http
            with:
              method: get
              endpoint: {url}/flaky/{key}?fail={fail}
      catch:
        errors:
          with:
            type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
        retry:
          delay: {{milliseconds: 100}}
          backoff: {{constant: {{}}}}
          limit:
            attempt:
              count: 2
"""


async def test_retry_recovers_from_two_503s_and_exhaustion_fails(
    fleet: Fleet, http: Server
) -> None:
    await apply_workflow(fleet, "retry-ok", RETRY.format(url=http.url, key="ok", fail=2))
    done = await finish(fleet, (await start(fleet, "retry-ok")).id)
    assert done.status.phase == COMPLETED, done.status.error
    assert http.calls["ok"] == 3
    assert output(done) == {"ok": True, "calls": 3}

    await apply_workflow(fleet, "retry-bad", RETRY.format(url=http.url, key="bad", fail=9))
    failed = await finish(fleet, (await start(fleet, "retry-bad")).id)
    assert failed.status.phase == FAILED
    assert http.calls["bad"] == 3
    assert "503" in failed.status.error.message
    assert failed.status.error.type == "WorkflowError"
    # The HTTP error's problem details arrive as data, in the execution and in its task.
    error = failed.status.error
    assert (error.status, error.title) == (503, "HTTP 503 Service Unavailable")
    assert error.instance.endswith("/callApi") and "503" in error.detail
    task_error = tasks(failed)[error.instance].error
    assert task_error.type == "https://serverlessworkflow.io/spec/1.0.0/errors/communication"
    assert (task_error.status, task_error.instance) == (503, error.instance)


async def test_twenty_tasks_are_all_reported_in_order_on_watch(fleet: Fleet) -> None:
    body = "do:\n" + "".join(f"  - step{i}:\n      set:\n        n: {i}\n" for i in range(20))
    await apply_workflow(fleet, "twenty", body)
    created = await start(fleet, "twenty")
    completed_order: list[str] = []
    stream = fleet.workflow_executions.WatchWorkflowExecution(
        workflow_execution_pb2.WatchWorkflowExecutionRequest(id=created.id)
    )
    async for item in stream:
        if item.HasField("event"):
            for task in item.event.update.tasks:
                if task.phase == TASK_COMPLETED:
                    completed_order.append(task.id)
    assert completed_order == [f"/do/{i}/step{i}" for i in range(20)]
    done = await get(fleet, created.id)
    assert done.status.phase == COMPLETED
    statuses = tasks(done)
    assert len(statuses) == 20
    assert all(t.phase == TASK_COMPLETED for t in statuses.values())
    assert statuses["/do/7/step7"].output.struct_value.fields["n"].number_value == 7
    assert output(done) == {"n": 19}


async def test_cancel_aborts_the_running_http_call(fleet: Fleet, http: Server) -> None:
    await apply_workflow(
        fleet,
        "long",
        f"""
        do:
          - wait_for_it:
              call: http
              with: {{method: get, endpoint: "{http.url}/slow/long?ms=30000"}}
        """,
    )
    created = await start(fleet, "long")
    await assert_eventually(lambda: _async(list(http.calls)), lambda c: "long" in c, timeout=20)
    began = time.monotonic()
    await fleet.workflow_executions.CancelWorkflowExecution(
        workflow_execution_pb2.CancelWorkflowExecutionRequest(id=created.id)
    )
    done = await finish(fleet, created.id, timeout=15)
    assert done.status.phase == common_pb2.EXECUTION_PHASE_CANCELLED
    assert time.monotonic() - began < 8
    await assert_eventually(lambda: _async(http.disconnected), lambda d: "long" in d, timeout=5)


async def test_task_timeout_fails_naming_the_task(fleet: Fleet, http: Server) -> None:
    await apply_workflow(
        fleet,
        "timeboxed",
        f"""
        do:
          - tooSlow:
              call: http
              with: {{method: get, endpoint: "{http.url}/slow/timeboxed?ms=10000"}}
              timeout:
                after: PT0.5S
        """,
    )
    done = await finish(fleet, (await start(fleet, "timeboxed")).id)
    assert done.status.phase == FAILED
    assert "/do/0/tooSlow" in done.status.error.message
    assert "timed out" in done.status.error.message.lower()


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ("do:\n  - x:\n      teleport: {}\n", "/do/0/x"),
        (
            "do:\n  - callApi:\n      call: http\n      with: {method: get}\n",
            "/do/0/callApi/with/endpoint",
        ),
        ("do:\n  - a:\n      set: {v: 1}\n      then: nowhere\n", "/do/0/a/then"),
        ("do:\n  - a:\n      set: {v: '${ .[ }'}\n", "/do/0/a/set/v"),
        (
            "do:\n  - ask:\n      call: agent\n      with: {agent: ghost, message: hi}\n",
            "/do/0/ask/with/agent",
        ),
    ],
)
async def test_invalid_documents_are_rejected_naming_the_pointer(
    fleet: Fleet, body: str, pointer: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await fleet.workflows.ApplyWorkflow(
            workflow_pb2.ApplyWorkflowRequest(
                workflow=workflow_pb2.Workflow(name="bad", document=document("bad", body))
            )
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"workflow.document{pointer}" in (raised.value.details() or "")
    assert [v.field for v in field_violations(raised.value)] == [f"workflow.document{pointer}"]
    listed = await fleet.workflows.ListWorkflows(workflow_pb2.ListWorkflowsRequest())
    assert list(listed.workflows) == []


async def test_a_raise_fails_the_execution_with_its_problem_as_data(fleet: Fleet) -> None:
    await apply_workflow(fleet, "refuse", RAISE_BAD_ORDER)
    failed = await finish(fleet, (await start(fleet, "refuse")).id)
    assert failed.status.phase == FAILED
    error = failed.status.error
    assert (error.type, error.status, error.title, error.detail, error.instance) == (
        "WorkflowError",
        422,
        "Bad order",
        "order is empty",
        "/do/0/check",
    )
    task_error = tasks(failed)["/do/0/check"].error
    assert (task_error.type, task_error.status) == ("https://example.com/errors/bad-order", 422)


async def test_unknown_workflow_is_not_found(fleet: Fleet) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await start(fleet, "ghost")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_result_larger_than_temporals_payload_limit_does_not_break_it(
    fleet: Fleet, http: Server
) -> None:
    await apply_workflow(
        fleet,
        "big",
        f"""
        do:
          - fetch:
              call: http
              with: {{method: get, endpoint: "{http.url}/big?bytes=3000000"}}
          - measure:
              set:
                size: ${{ .data | length }}
        """,
    )
    done = await finish(fleet, (await start(fleet, "big")).id)
    assert done.status.phase == COMPLETED, done.status.error
    assert output(done) == {"size": 3_000_000}
    shown = tasks(done)["/do/0/fetch"].output.string_value
    assert "over the" in shown and "status limit" in shown
