"""The spine, end to end in one process: gRPC API -> Temporal -> runner -> LMDB."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from orchestrator.workflows.scheduled_start import START_SCHEDULED_EXECUTION
from polyfleet import contract
from polyfleet.config import ExecutionSettings
from polyfleet.v1 import (
    activities_pb2,
    agent_execution_pb2,
    agent_pb2,
    common_pb2,
)
from tests.conftest import Fleet, scripted_agent, start_fleet, stopping
from tests.helpers import wait_terminal, workflow_closes_as

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED
FAILED = common_pb2.EXECUTION_PHASE_FAILED


async def _apply(fleet: Fleet, agent: agent_pb2.Agent) -> agent_pb2.Agent:
    return await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=agent))


async def _create(fleet: Fleet, agent: str, message: str) -> agent_execution_pb2.AgentExecution:
    return await fleet.executions.CreateAgentExecution(
        agent_execution_pb2.CreateAgentExecutionRequest(
            execution=agent_execution_pb2.AgentExecution(agent=agent, message=message)
        )
    )


async def _wait_terminal(fleet: Fleet, execution_id: str) -> agent_execution_pb2.AgentExecution:
    return await wait_terminal(fleet.client.agent_executions, execution_id)


async def _watch(
    fleet: Fleet, execution_id: str, after: int = 0
) -> tuple[agent_execution_pb2.AgentExecution, list[common_pb2.ExecutionEvent]]:
    stream = fleet.executions.WatchAgentExecution(
        agent_execution_pb2.WatchAgentExecutionRequest(id=execution_id, after_sequence=after)
    )
    snapshot: agent_execution_pb2.AgentExecution | None = None
    events: list[common_pb2.ExecutionEvent] = []
    async for item in stream:
        if item.HasField("snapshot"):
            assert snapshot is None, "snapshot sent twice"
            snapshot = item.snapshot
        else:
            events.append(item.event)
    assert snapshot is not None, "no snapshot"
    return snapshot, events


async def test_create_runs_to_completed_with_the_agents_real_answer(fleet: Fleet) -> None:
    await _apply(fleet, scripted_agent(**{"(?i)capital of france": "Paris is the capital."}))
    created = await _create(fleet, "assistant", "What is the capital of France?")
    assert created.status.phase == common_pb2.EXECUTION_PHASE_PENDING
    assert created.workflow_id == contract.agent_workflow_id(created.id)

    # A watcher that starts right away sees every event live, up to the terminal one.
    snapshot, events = await _watch(fleet, created.id)
    assert snapshot.id == created.id
    phases = [e.phase for e in events if e.update.phase]
    assert phases[0] == common_pb2.EXECUTION_PHASE_PENDING
    assert common_pb2.EXECUTION_PHASE_RUNNING in phases
    assert events[-1].phase == COMPLETED
    streamed = "".join(e.update.content_delta for e in events)
    assert streamed == "Paris is the capital."

    done = await _wait_terminal(fleet, created.id)
    assert done.status.phase == COMPLETED
    assert done.status.output_text == "Paris is the capital."
    assistant = [m for m in done.status.messages if m.role == common_pb2.MESSAGE_ROLE_ASSISTANT]
    assert [m.content for m in assistant] == ["Paris is the capital."]
    assert done.status.usage.output_tokens == 4
    assert done.status.HasField("start_time") and done.status.HasField("end_time")
    # The terminal event was written by the workflow's local UpdateStatus.
    assert events[-1].source == "orchestrator"
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))


async def test_second_execution_in_a_session_sees_the_thread_history(fleet: Fleet) -> None:
    await _apply(fleet, scripted_agent())
    first = await _create(fleet, "assistant", "hello there")
    await _wait_terminal(fleet, first.id)
    second = await fleet.executions.CreateAgentExecution(
        agent_execution_pb2.CreateAgentExecutionRequest(
            execution=agent_execution_pb2.AgentExecution(
                agent="assistant", message="again", session_id=first.session_id
            )
        )
    )
    done = await _wait_terminal(fleet, second.id)
    assert done.status.phase == COMPLETED
    assert done.session_id == first.session_id
    # Input tokens count the thread history ("hello there" + "You said: hello there") + 1.
    assert done.status.usage.input_tokens == 1 + 2 + 4


async def test_activities_run_on_the_queue_named_in_the_memo(fleet: Fleet) -> None:
    await _apply(fleet, scripted_agent())
    created = await _create(fleet, "assistant", "route me")
    await _wait_terminal(fleet, created.id)
    handle = fleet.temporal.get_workflow_handle(created.workflow_id)
    description = await handle.describe()
    memo = await description.memo()
    runner_queue = fleet.queues.agent_execution_runner_task_queue
    assert runner_queue.startswith("custom-runner-")
    assert memo == {contract.MEMO_ACTIVITY_TASK_QUEUE: runner_queue}
    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert [(a.activity_type.name, a.task_queue.name) for a in scheduled] == [
        ("EnsureThread", runner_queue),
        ("ExecuteGraphton", runner_queue),
    ]


async def test_memo_queue_wins_over_the_default_queue(fleet: Fleet) -> None:
    """A workflow started with a memo routes there even if its default names another queue."""
    await _apply(fleet, scripted_agent())
    created = await _create(fleet, "assistant", "first")
    await _wait_terminal(fleet, created.id)
    # Re-run the same execution's workflow by hand with a bogus default queue, under its
    # own workflow ID: the runner may act only on the execution of the workflow it serves.
    execution_id = created.id
    handle = await fleet.temporal.start_workflow(
        contract.AGENT_EXECUTION_WORKFLOW,
        activities_pb2.AgentExecutionWorkflowInput(
            execution_id=execution_id,
            session_id=created.session_id,
            policy=activities_pb2.ActivityPolicy(
                default_activity_task_queue=f"nobody-polls-{uuid.uuid4().hex}"
            ),
        ),
        id=contract.agent_workflow_id(execution_id),
        task_queue=fleet.queues.agent_execution_orchestrator_task_queue,
        memo={contract.MEMO_ACTIVITY_TASK_QUEUE: fleet.queues.agent_execution_runner_task_queue},
        result_type=activities_pb2.AgentExecutionWorkflowOutput,
    )
    # The execution is already COMPLETED, so the runner's report is refused and the
    # workflow fails — but it got as far as the runner on the memo queue.
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    history = await handle.fetch_history()
    queues = {
        e.activity_task_scheduled_event_attributes.task_queue.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    assert queues == {fleet.queues.agent_execution_runner_task_queue}
    started = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert len(started) == 2


async def test_workers_register_only_their_side_of_the_contract(fleet: Fleet) -> None:
    registered = {}
    local_activities = {}
    for worker in fleet.orchestrator.workers:
        config = worker.config()
        # Local activities only: the orchestrator never polls for remote activity tasks.
        assert config["no_remote_activities"] is True
        local_activities[config["task_queue"]] = {
            getattr(a, "__temporal_activity_definition").name for a in config["activities"]
        }
        registered[config["task_queue"]] = [w.__name__ for w in config["workflows"]]
    agent_queue = fleet.queues.agent_execution_orchestrator_task_queue
    workflow_queue = fleet.queues.workflow_execution_orchestrator_task_queue
    assert registered == {
        agent_queue: ["AgentExecutionWorkflow"],
        # A workflow's Temporal Schedule starts ScheduledWorkflowStart (orchestrator/schedules.py).
        workflow_queue: ["WorkflowExecutionWorkflow", "ScheduledWorkflowStart"],
    }
    assert local_activities == {
        agent_queue: {contract.UPDATE_STATUS},
        workflow_queue: {contract.UPDATE_STATUS, START_SCHEDULED_EXECUTION},
    }

    assert fleet.runner is not None
    runner_activities: set[str] = set()
    for worker in fleet.runner.workers:
        cfg = worker.config()
        assert list(cfg["workflows"]) == []
        runner_activities |= {
            getattr(a, "__temporal_activity_definition").name for a in cfg["activities"]
        }
    assert runner_activities == set(contract.RUNNER_ACTIVITIES)


async def test_agent_that_raises_ends_failed_via_local_update_status(fleet: Fleet) -> None:
    agent = scripted_agent(name="breaker")
    agent.model.scripted.rules.add(pattern="explode", error="the model was told to explode")
    await _apply(fleet, agent)
    created = await _create(fleet, "breaker", "please explode")
    done = await _wait_terminal(fleet, created.id)

    assert done.status.phase == FAILED
    assert done.status.error.type == "ModelProviderError"
    assert done.status.error.step == "ExecuteGraphton"
    assert "the model was told to explode" in done.status.error.message
    system = [m.content for m in done.status.messages if m.role == common_pb2.MESSAGE_ROLE_SYSTEM]
    assert len(system) == 1
    assert "ExecuteGraphton" in system[0] and "the model was told to explode" in system[0]

    _, events = await _watch(fleet, created.id)
    assert events[-1].phase == FAILED
    assert events[-1].source == "orchestrator"  # the local UpdateStatus, not the runner
    assert all(e.source != "runner" or e.phase != FAILED for e in events)

    await workflow_closes_as(fleet.temporal, created.workflow_id, WorkflowExecutionStatus.FAILED)
    handle = fleet.temporal.get_workflow_handle(created.workflow_id)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == "ModelProviderError"


async def test_no_runner_fails_after_schedule_to_start_naming_the_queue(
    temporal_client: Client, tmp_path: Path
) -> None:
    executions = ExecutionSettings(activity_schedule_to_start_timeout=timedelta(seconds=2))
    fleet = await start_fleet(temporal_client, tmp_path, with_runner=False, executions=executions)
    async with stopping(fleet):
        await _apply(fleet, scripted_agent())
        created = await _create(fleet, "assistant", "anyone there?")
        done = await _wait_terminal(fleet, created.id)
        queue = fleet.queues.agent_execution_runner_task_queue
        assert done.status.phase == FAILED
        assert done.status.error.type == "ActivityTimeout"
        assert done.status.error.step == "EnsureThread"
        assert f"'{queue}'" in done.status.error.message
        assert "schedule-to-start" in done.status.error.message


async def test_watch_from_zero_middle_and_after_terminal_replays_the_log(fleet: Fleet) -> None:
    await _apply(fleet, scripted_agent())
    created = await _create(fleet, "assistant", "one two three four five six seven eight")
    await _wait_terminal(fleet, created.id)
    assert fleet.orchestrator.db is not None
    logged = await fleet.orchestrator.db.agent_executions.events(created.id)
    last = logged[-1].sequence
    # Created, RUNNING, the answer (reports queued together travel as one), COMPLETED.
    assert len(logged) >= 4
    assert [e.sequence for e in logged] == list(range(1, last + 1))

    _, from_zero = await _watch(fleet, created.id, 0)
    assert from_zero == logged
    middle = last // 2
    _, from_middle = await _watch(fleet, created.id, middle)
    assert from_middle == logged[middle:]
    snapshot, after_end = await _watch(fleet, created.id, last)
    assert after_end == []
    assert snapshot.status.phase == COMPLETED
    assert snapshot.status.last_sequence == last


async def test_bad_input_gets_canonical_codes_naming_the_field(fleet: Fleet) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await _create(fleet, "no-such-agent", "hi")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-agent" in (unknown.value.details() or "")

    await _apply(fleet, scripted_agent())
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await _create(fleet, "assistant", "   ")
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "execution.message" in (empty.value.details() or "")

    bad = scripted_agent(name="Bad Name")
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await _apply(fleet, bad)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "agent.name" in (invalid.value.details() or "")

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await fleet.executions.GetAgentExecution(
            agent_execution_pb2.GetAgentExecutionRequest(id="aex-missing")
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    listed = await fleet.executions.ListAgentExecutions(
        agent_execution_pb2.ListAgentExecutionsRequest()
    )
    assert listed.executions == []  # nothing was stored by the rejected requests


async def test_list_filters_by_agent_and_phase(fleet: Fleet) -> None:
    await _apply(fleet, scripted_agent(name="alpha"))
    await _apply(fleet, scripted_agent(name="beta"))
    a = await _create(fleet, "alpha", "a")
    b = await _create(fleet, "beta", "b")
    await _wait_terminal(fleet, a.id)
    await _wait_terminal(fleet, b.id)
    only_alpha = await fleet.executions.ListAgentExecutions(
        agent_execution_pb2.ListAgentExecutionsRequest(agent="alpha")
    )
    assert [e.id for e in only_alpha.executions] == [a.id]
    completed = await fleet.executions.ListAgentExecutions(
        agent_execution_pb2.ListAgentExecutionsRequest(phase=COMPLETED)
    )
    assert [e.id for e in completed.executions] == [b.id, a.id]  # newest first
