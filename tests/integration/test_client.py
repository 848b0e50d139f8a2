"""The Python client against a real fleet: run_agent, watch, wait, list_all, errors."""

from __future__ import annotations

import grpc
import pytest

from polyfleet.client import Client, PolyfleetError
from polyfleet.v1 import agent_execution_pb2, common_pb2
from tests.conftest import Fleet, scripted_agent

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED


async def test_run_agent_then_watch_and_wait(fleet: Fleet) -> None:
    async with await Client.connect(settings=fleet.client_settings()) as client:
        await client.agents.apply(scripted_agent(hello="Hello there, friend"))
        created = await client.run_agent("assistant", "hello")

        watch = client.watch(created.id)
        events = [event async for event in watch]
        done = await client.wait(created.id, timeout=30)

        assert watch.execution is not None and watch.execution.status.phase == COMPLETED
        assert isinstance(done, agent_execution_pb2.AgentExecution)
        assert (done.status.phase, done.status.output_text) == (COMPLETED, "Hello there, friend")
        sequences = [event.sequence for event in events]
        assert sequences == sorted(set(sequences)) and sequences[-1] == done.status.last_sequence
        assert events[-1].phase == COMPLETED

        # Resuming from the middle of the log yields only the events after it.
        later = [e.sequence async for e in client.watch(created.id, sequences[1])]
        assert later == sequences[2:]

        waited = await client.run_agent("assistant", "hello again", wait=True, timeout=30)
        assert waited.status.phase == COMPLETED
        listed = agent_execution_pb2.ListAgentExecutionsRequest(agent="assistant", page_size=1)
        ids = [e.id async for e in client.agent_executions.list_all(listed)]
        assert sorted(ids) == sorted([created.id, waited.id])


async def test_a_refused_call_raises_polyfleet_error_with_the_field(fleet: Fleet) -> None:
    client = fleet.client

    with pytest.raises(PolyfleetError) as raised:
        await client.run_agent("no-such-agent", "hello")

    assert raised.value.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)
    assert raised.value.reason
