"""FleetService.WatchExecutions on a real fleet: every execution's changes, live and resumed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from temporalio.client import Client

from polyfleet.roles import Role
from polyfleet.v1 import (
    agent_execution_pb2,
    agent_pb2,
    common_pb2,
    fleet_pb2,
    fleet_pb2_grpc,
    workflow_execution_pb2,
)
from tests.conftest import Fleet, scripted_agent, start_fleet, stop_fleet
from tests.helpers import assert_eventually, create_agent_execution, run_cli
from tests.integration.workflows.conftest import apply_workflow, start

CREATED = fleet_pb2.EXECUTION_CHANGE_TYPE_CREATED
PHASE_CHANGED = fleet_pb2.EXECUTION_CHANGE_TYPE_PHASE_CHANGED
RESET = fleet_pb2.EXECUTION_CHANGE_TYPE_RESET
PENDING = common_pb2.EXECUTION_PHASE_PENDING
RUNNING = common_pb2.EXECUTION_PHASE_RUNNING
COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED
CANCELLED = common_pb2.EXECUTION_PHASE_CANCELLED

Change = fleet_pb2.ExecutionChange


class Stream:
    """One WatchExecutions call, its changes collected in the background."""

    def __init__(
        self, call: grpc.aio.UnaryStreamCall[fleet_pb2.WatchExecutionsRequest, Change]
    ) -> None:
        self.call = call
        self.changes: list[Change] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for change in self.call:
            self.changes.append(change)

    async def until(self, count: int) -> list[Change]:
        """The first ``count`` changes, once they have arrived."""

        async def received() -> list[Change]:
            return self.changes

        await assert_eventually(received, lambda got: len(got) >= count, message=f"{count} changes")
        return self.changes[:count]

    async def close(self) -> None:
        """End the call and its reader."""
        self.call.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)

    def of(self, execution_id: str) -> list[tuple[int, int]]:
        """The (type, phase) of each change of one execution, in stream order."""
        return [
            (c.type, _execution(c).status.phase)
            for c in self.changes
            if c.type != RESET and _execution(c).id == execution_id
        ]


def _execution(
    change: Change,
) -> agent_execution_pb2.AgentExecution | workflow_execution_pb2.WorkflowExecution:
    if change.HasField("agent_execution"):
        return change.agent_execution
    return change.workflow_execution


@asynccontextmanager
async def watching(fleet: Fleet, after_sequence: int = 0) -> AsyncIterator[Stream]:
    """A stream of ``fleet``'s changes, open (its position taken) when the block starts."""
    call = fleet_pb2_grpc.FleetServiceStub(fleet.channel).WatchExecutions(
        fleet_pb2.WatchExecutionsRequest(after_sequence=after_sequence)
    )
    # The server sends its headers once it holds the stream's position.
    await call.initial_metadata()
    stream = Stream(call)
    try:
        yield stream
    finally:
        await stream.close()


def _slow_agent(name: str) -> agent_pb2.Agent:
    agent = scripted_agent(name=name)
    agent.model.scripted.default_reply = "one two three four five six seven eight nine ten"
    agent.model.scripted.chunk_words = 1
    agent.model.scripted.chunk_delay_ms = 500  # ~5 s of streaming: time to cancel
    return agent


async def test_both_kinds_appear_and_change_phase_in_order_and_resume_exactly(
    fleet: Fleet,
) -> None:
    await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=scripted_agent()))
    await apply_workflow(fleet, "double", "do:\n  - double:\n      set:\n        n: 2\n")
    lifecycle = [(CREATED, PENDING), (PHASE_CHANGED, RUNNING), (PHASE_CHANGED, COMPLETED)]
    async with watching(fleet) as stream:
        agent_run = await create_agent_execution(fleet, "assistant", "the secret word")
        workflow_run = await start(fleet, "double")
        await stream.until(6)
        assert stream.of(agent_run.id) == lifecycle
        assert stream.of(workflow_run.id) == lifecycle
        changes = list(stream.changes)
    sequences = [c.sequence for c in changes]
    assert sequences == sorted(set(sequences))
    # BASIC: the list's view, no message contents, outputs or documents.
    for change in changes:
        execution = _execution(change)
        assert all(m.content == "" for m in execution.status.messages)
        if change.HasField("agent_execution"):
            assert execution.status.messages, "BASIC keeps the messages' shape"
            assert change.agent_execution.status.output_text == ""
        else:
            assert change.workflow_execution.document == ""
            assert not change.workflow_execution.status.HasField("output")
    completed = next(
        c for c in changes if c.type == PHASE_CHANGED and c.agent_execution.id == agent_run.id
    )
    full = await fleet.executions.GetAgentExecution(
        agent_execution_pb2.GetAgentExecutionRequest(id=agent_run.id)
    )
    assert "the secret word" in full.status.messages[0].content
    assert completed.agent_execution.status.messages[0].id == full.status.messages[0].id

    # Resuming from the middle gets exactly the rest, from the orchestrator's memory.
    middle = len(changes) // 2
    async with watching(fleet, changes[middle - 1].sequence) as resumed:
        assert await resumed.until(len(changes) - middle) == changes[middle:]


async def test_cancel_shows_as_a_phase_change_running_or_queued(fleet: Fleet) -> None:
    await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=_slow_agent("slow")))
    async with watching(fleet) as stream:
        running = await create_agent_execution(fleet, "slow", "take your time")
        # Same session: it waits, persisted but not started, behind the running one.
        queued = await create_agent_execution(fleet, "slow", "me next", running.session_id)
        assert queued.status.queued_behind == running.id
        await assert_eventually(
            lambda: _phases(stream, running.id), lambda got: RUNNING in got, message="RUNNING"
        )
        # A queued execution has no workflow yet: the store is cancelled directly.
        await fleet.executions.CancelAgentExecution(
            agent_execution_pb2.CancelAgentExecutionRequest(id=queued.id)
        )
        await fleet.executions.CancelAgentExecution(
            agent_execution_pb2.CancelAgentExecutionRequest(id=running.id)
        )
        await assert_eventually(
            lambda: _phases(stream, running.id), lambda got: CANCELLED in got, message="CANCELLED"
        )
        assert stream.of(queued.id) == [(CREATED, PENDING), (PHASE_CHANGED, CANCELLED)]
        assert stream.of(running.id) == [
            (CREATED, PENDING),
            (PHASE_CHANGED, RUNNING),
            (PHASE_CHANGED, CANCELLED),
        ]


async def _phases(stream: Stream, execution_id: str) -> list[int]:
    return [phase for _, phase in stream.of(execution_id)]


async def test_a_restarted_orchestrator_resets_old_sequences_and_numbers_above_them(
    temporal_client: Client, tmp_path: Path
) -> None:
    first = await start_fleet(temporal_client, tmp_path, with_runner=False)
    try:
        await first.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=scripted_agent()))
        async with watching(first) as stream:
            await create_agent_execution(first, "assistant", "before the restart")
            (before,) = await stream.until(1)
    finally:
        await stop_fleet(first)
    second = await start_fleet(temporal_client, tmp_path, queues=first.queues, with_runner=False)
    try:
        async with watching(second, before.sequence) as stream:
            created = await create_agent_execution(second, "assistant", "after the restart")
            reset, change = await stream.until(2)
        # Not held any more: the client lists again, then goes on after the RESET.
        assert reset.type == RESET and reset.WhichOneof("execution") is None
        assert (change.type, change.agent_execution.id) == (CREATED, created.id)
        assert change.sequence > reset.sequence
        # Numbered above every sequence of the previous process.
        assert change.sequence > before.sequence
    finally:
        await stop_fleet(second)


async def test_a_negative_sequence_is_refused_naming_the_field(fleet: Fleet) -> None:
    stub = fleet_pb2_grpc.FleetServiceStub(fleet.channel)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in stub.WatchExecutions(fleet_pb2.WatchExecutionsRequest(after_sequence=-1)):
            pass
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "after_sequence" in (raised.value.details() or "")


async def test_the_client_and_the_cli_stream_the_changes(fleet: Fleet) -> None:
    await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=scripted_agent()))
    async with watching(fleet) as stream:
        created = await create_agent_execution(fleet, "assistant", "hello")
        changes = await stream.until(3)
    after = changes[0].sequence - 1

    async def first_change() -> Change:
        async for change in fleet.client.fleet.watch_executions(after):
            return change
        raise AssertionError("the stream ended")

    assert await asyncio.wait_for(first_change(), 30) == changes[0]

    code, out, err = await run_cli(
        fleet, "executions", "changes", "--after", str(after), "--limit", "3", role=Role.READER
    )
    assert code == 0, err
    assert out.splitlines() == [
        f"{changes[0].sequence} CREATED {created.id} agent/assistant PENDING",
        f"{changes[1].sequence} PHASE_CHANGED {created.id} agent/assistant RUNNING",
        f"{changes[2].sequence} PHASE_CHANGED {created.id} agent/assistant COMPLETED",
    ]
    code, out, err = await run_cli(
        fleet, "executions", "changes", "--after", str(after), "--limit", "1", "-o", "json"
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["sequence"] == str(changes[0].sequence)  # int64: a string in proto3 JSON
    assert document["type"] == "EXECUTION_CHANGE_TYPE_CREATED"
    assert document["agentExecution"]["id"] == created.id
