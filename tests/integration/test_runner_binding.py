"""A runner acts only on the execution whose activity it is running (orchestrator/auth/binding.py).

A held runner (tests/integration/lifecycle/conftest.py) runs two executions' activities
and records the claim each would send. With the runner token and a real claim, a call
about the claim's own execution is served; about the other execution, its thread or its
checkpoint it is PERMISSION_DENIED (RUNNER_NOT_BOUND); a claim Temporal does not confirm
(another worker, another attempt, an activity that has ended) is refused too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.worker import Worker

from polyfleet import contract
from polyfleet.error_details import error_info
from polyfleet.roles import Role
from polyfleet.v1 import common_pb2, event_pb2, runner_pb2, runner_pb2_grpc
from tests.conftest import Fleet, scripted_agent, start_fleet, stop_fleet
from tests.integration.lifecycle.conftest import HeldRunner, apply, create, request

if TYPE_CHECKING:
    from polyfleet.v1.runner_pb2_grpc import RunnerServiceAsyncStub

Claim = tuple[tuple[str, str], ...]


@dataclass
class Held:
    fleet: Fleet
    runner: HeldRunner
    stub: RunnerServiceAsyncStub
    mine: str
    other: str


@pytest_asyncio.fixture
async def held(temporal_client: Client, tmp_path: Path) -> AsyncIterator[Held]:
    fleet = await start_fleet(temporal_client, tmp_path, with_runner=False)
    runner = HeldRunner()
    channel = fleet.channel_as(Role.RUNNER)
    try:
        await apply(fleet, scripted_agent())
        async with Worker(
            temporal_client,
            task_queue=fleet.queues.agent_execution_runner_task_queue,
            activities=[runner.ensure_thread, runner.execute_graphton],
        ):
            first = await create(fleet, request("assistant"))
            second = await create(fleet, request("assistant"))
            while len(runner.claims) < 2:
                runner.running.clear()
                await runner.running.wait()
            yield Held(
                fleet, runner, runner_pb2_grpc.RunnerServiceStub(channel), first.id, second.id
            )
            runner.release.set()
    finally:
        await channel.close()
        await stop_fleet(fleet)


def _refused(raised: pytest.ExceptionInfo[grpc.aio.AioRpcError]) -> str:
    assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
    info = error_info(raised.value)
    assert info is not None and info.reason == "RUNNER_NOT_BOUND"
    return raised.value.details() or ""


def _report(execution_id: str, report_id: str) -> runner_pb2.ReportProgressRequest:
    return runner_pb2.ReportProgressRequest(
        execution_id=execution_id,
        report_id=report_id,
        update=common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_RUNNING),
    )


async def test_a_runner_acts_on_its_own_execution_and_no_other(held: Held) -> None:
    claim = held.runner.claims[held.mine]
    # Its own execution: served.
    await held.stub.ReportProgress(_report(held.mine, "own/1"), metadata=claim)
    context = await held.stub.GetAgentExecutionContext(
        runner_pb2.GetAgentExecutionContextRequest(execution_id=held.mine), metadata=claim
    )
    assert context.execution.id == held.mine
    thread = await held.stub.EnsureThread(
        runner_pb2.EnsureThreadRequest(execution_id=held.mine), metadata=claim
    )
    await held.stub.AppendThreadMessages(
        runner_pb2.AppendThreadMessagesRequest(thread_id=thread.thread_id, report_id="own/2"),
        metadata=claim,
    )
    # Another execution, running at the same time on the same runner: refused.
    before = await held.fleet.client.agent_executions.get(held.other)
    calls: list[Awaitable[object]] = [
        held.stub.ReportProgress(_report(held.other, "forged/1"), metadata=claim),
        held.stub.GetAgentExecutionContext(
            runner_pb2.GetAgentExecutionContextRequest(execution_id=held.other), metadata=claim
        ),
        held.stub.EnsureThread(
            runner_pb2.EnsureThreadRequest(execution_id=held.other), metadata=claim
        ),
        held.stub.PutCheckpoint(
            runner_pb2.PutCheckpointRequest(execution_id=held.other, sequence=1, data=b"x"),
            metadata=claim,
        ),
        held.stub.GetCheckpoint(
            runner_pb2.GetCheckpointRequest(execution_id=held.other), metadata=claim
        ),
        held.stub.EmitEvent(
            event_pb2.EmitEventRequest(
                execution_id=held.other,
                task_id="/do/0/e",
                event=event_pb2.CloudEvent(type="forged"),
            ),
            metadata=claim,
        ),
        held.stub.ReceiveEvents(
            event_pb2.ReceiveEventsRequest(execution_id=held.other), metadata=claim
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert f"runs an activity of execution {held.mine}, not of '{held.other}'" in _refused(
            raised
        )
    assert await held.fleet.client.agent_executions.get(held.other) == before


async def test_a_runner_cannot_write_another_sessions_thread(held: Held) -> None:
    other = held.runner.claims[held.other]
    theirs = await held.stub.EnsureThread(
        runner_pb2.EnsureThreadRequest(execution_id=held.other), metadata=other
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await held.stub.AppendThreadMessages(
            runner_pb2.AppendThreadMessagesRequest(
                thread_id=theirs.thread_id,
                report_id="inject/1",
                messages=[
                    common_pb2.Message(role=common_pb2.MESSAGE_ROLE_USER, content="injected")
                ],
            ),
            metadata=held.runner.claims[held.mine],
        )
    assert "is not the thread of execution" in _refused(raised)
    # Nor through the messages a report may carry for the thread: the whole call is refused.
    before = await held.fleet.client.agent_executions.get(held.mine)
    report = _report(held.mine, "inject/2")
    report.thread_append.CopyFrom(
        runner_pb2.AppendThreadMessagesRequest(
            thread_id=theirs.thread_id,
            report_id="inject/3",
            messages=[common_pb2.Message(role=common_pb2.MESSAGE_ROLE_USER, content="injected")],
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await held.stub.ReportProgress(report, metadata=held.runner.claims[held.mine])
    assert "is not the thread of execution" in _refused(raised)
    assert await held.fleet.client.agent_executions.get(held.mine) == before


async def test_a_report_carries_the_turn_to_its_own_thread_once(held: Held) -> None:
    claim = held.runner.claims[held.mine]
    thread = await held.stub.EnsureThread(
        runner_pb2.EnsureThreadRequest(execution_id=held.mine), metadata=claim
    )
    turn = [
        common_pb2.Message(role=common_pb2.MESSAGE_ROLE_USER, content="question"),
        common_pb2.Message(role=common_pb2.MESSAGE_ROLE_ASSISTANT, content="answer"),
    ]
    report = _report(held.mine, "turn/1")
    report.thread_append.CopyFrom(
        runner_pb2.AppendThreadMessagesRequest(
            thread_id=thread.thread_id, report_id="turn/2", messages=turn
        )
    )
    # A retried call (its first answer lost) applies neither the report nor the turn twice.
    first = await held.stub.ReportProgress(report, metadata=claim)
    again = await held.stub.ReportProgress(report, metadata=claim)

    assert first.applied and not again.applied
    db = held.fleet.orchestrator.db
    assert db is not None
    stored = await db.threads.get(thread.thread_id)
    assert [m.content for m in stored.messages][-2:] == ["question", "answer"]
    assert len(stored.messages) == thread.message_count + 2


def _with(claim: Claim, key: str, value: str) -> Claim:
    return tuple((k, value if k == key else v) for k, v in claim)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (contract.RUNNER_METADATA_WORKER_IDENTITY, "12345@elsewhere"),
        (contract.RUNNER_METADATA_ATTEMPT, "2"),
        (contract.RUNNER_METADATA_ACTIVITY_ID, "99"),
        (contract.RUNNER_METADATA_RUN_ID, "00000000-0000-0000-0000-000000000000"),
    ],
)
async def test_a_claim_temporal_does_not_confirm_is_refused(
    held: Held, key: str, value: str
) -> None:
    forged = _with(held.runner.claims[held.mine], key, value)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await held.stub.ReportProgress(_report(held.mine, "forged/2"), metadata=forged)
    _refused(raised)


async def test_one_confirmation_covers_the_workers_calls_about_its_run(
    held: Held, temporal_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = temporal_client.workflow_service
    describe = service.describe_workflow_execution
    described: list[str] = []

    async def counted(request: Any, **kwargs: Any) -> Any:
        described.append(request.execution.workflow_id)
        return await describe(request, **kwargs)

    monkeypatch.setattr(service, "describe_workflow_execution", counted)
    claim = held.runner.claims[held.mine]
    await held.stub.ReportProgress(_report(held.mine, "own/1"), metadata=claim)
    assert len(described) == 1
    # Another of the run's activities on the same worker (an agent's EnsureThread, then
    # its ExecuteGraphton): served on the same confirmation, without asking Temporal.
    sibling = _with(claim, contract.RUNNER_METADATA_ACTIVITY_ID, "1")
    await held.stub.ReportProgress(_report(held.mine, "own/2"), metadata=sibling)
    assert len(described) == 1
    # Another worker naming the same run is checked with Temporal, and refused.
    elsewhere = _with(claim, contract.RUNNER_METADATA_WORKER_IDENTITY, "12345@elsewhere")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await held.stub.ReportProgress(_report(held.mine, "forged/3"), metadata=elsewhere)
    assert "is not running on worker '12345@elsewhere'" in _refused(raised)
    assert len(described) == 2


async def test_a_claim_is_required(held: Held) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await held.stub.ReportProgress(_report(held.mine, "bare/1"))
    assert "must name the activity attempt" in _refused(raised)


async def test_public_roles_cannot_call_runner_service_even_with_a_real_claim(held: Held) -> None:
    channel = held.fleet.channel_as(Role.ADMIN)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            stub: RunnerServiceAsyncStub = runner_pb2_grpc.RunnerServiceStub(channel)
            await stub.ReportProgress(
                _report(held.mine, "admin/1"), metadata=held.runner.claims[held.mine]
            )
    finally:
        await channel.close()
    assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "needs role runner" in (raised.value.details() or "")
