"""SSE over the HTTP API on a real secure fleet: resume with Last-Event-ID, fan-out, change feed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from google.protobuf import json_format
from temporalio.client import Client

from polyfleet.roles import Role
from polyfleet.v1 import agent_execution_pb2, agent_pb2, common_pb2
from tests.conftest import Fleet, scripted_agent, start_fleet, stopping
from tests.helpers import assert_eventually
from tests.integration.test_http_api import http_client


@dataclass(frozen=True)
class SseMessage:
    """One server-sent event."""

    id: str | None
    event: str
    data: dict[str, Any]


async def sse_messages(response: httpx.Response) -> AsyncIterator[SseMessage]:
    """The events of a ``text/event-stream`` response, keepalive comments skipped."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
            continue
        if fields:
            yield SseMessage(fields.get("id"), fields.get("event", ""), json.loads(fields["data"]))
            fields = {}


def paced_agent(delay_ms: int) -> agent_pb2.Agent:
    """Twelve words streamed one per chunk, ``delay_ms`` apart."""
    agent = scripted_agent(name="paced")
    agent.model.scripted.default_reply = " ".join(f"word{i}" for i in range(12))
    agent.model.scripted.chunk_words = 1
    agent.model.scripted.chunk_delay_ms = delay_ms
    return agent


async def start(fleet: Fleet, agent: agent_pb2.Agent) -> str:
    await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=agent))
    created = await fleet.executions.CreateAgentExecution(
        agent_execution_pb2.CreateAgentExecutionRequest(
            execution=agent_execution_pb2.AgentExecution(agent=agent.name, message="go")
        )
    )
    return created.id


async def grpc_events(fleet: Fleet, execution_id: str) -> list[common_pb2.ExecutionEvent]:
    """The whole event log as the gRPC Watch streams it (after the terminal event)."""
    stream = fleet.executions.WatchAgentExecution(
        agent_execution_pb2.WatchAgentExecutionRequest(id=execution_id)
    )
    return [item.event async for item in stream if item.HasField("event")]


def as_json(events: list[common_pb2.ExecutionEvent]) -> list[dict[str, Any]]:
    return [json_format.MessageToDict(event) for event in events]


async def test_a_client_resuming_with_last_event_id_receives_exactly_the_rest(
    fleet: Fleet,
) -> None:
    execution_id = await start(fleet, paced_agent(200))
    url = f"/v1/agentExecutions/{execution_id}/events"
    began = time.monotonic()
    before: list[SseMessage] = []
    async with http_client(fleet, Role.READER) as client:
        async with client.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            async for message in sse_messages(response):
                before.append(message)
                if sum(m.event == "event" for m in before) == 4:
                    break
        # Disconnected mid-stream: the execution is still streaming its answer.
        last_id = before[-1].id
        assert last_id is not None
        resumed_at = time.monotonic()
        after: list[SseMessage] = []
        async with client.stream("GET", url, headers={"Last-Event-ID": last_id}) as response:
            assert response.status_code == 200
            after = [message async for message in sse_messages(response)]
        ended = time.monotonic()

    snapshot = before[0]
    assert snapshot.event == "snapshot"
    assert snapshot.data["id"] == execution_id
    assert snapshot.id == snapshot.data["status"].get("lastSequence", "0")
    # The resumed stream starts with a fresh snapshot, then only events after last_id.
    assert after[0].event == "snapshot"
    before_events = [m for m in before if m.event == "event"]
    after_events = [m for m in after if m.event == "event"]
    assert after_events, "nothing left after the disconnect: the test did not disconnect early"
    log = as_json(await grpc_events(fleet, execution_id))
    # Nothing lost, nothing repeated: the two streams are the log, in order.
    assert [m.data for m in before_events + after_events] == log
    assert [m.id for m in before_events + after_events] == [e["sequence"] for e in log]
    # It ended after the terminal event.
    assert after_events[-1].data["phase"] == "EXECUTION_PHASE_COMPLETED"
    print(
        f"\nSSE resume: {len(before_events)} events before the disconnect, "
        f"{len(after_events)} after resuming from Last-Event-ID {last_id}, "
        f"{len(log)} in the log; read {resumed_at - began:.2f} s before disconnecting, "
        f"resumed stream took {ended - resumed_at:.2f} s to the terminal event"
    )


async def test_after_sequence_query_resumes_like_the_header(fleet: Fleet) -> None:
    execution_id = await start(fleet, paced_agent(0))
    log = as_json(await grpc_events(fleet, execution_id))
    middle = int(log[len(log) // 2]["sequence"])
    async with http_client(fleet) as client:
        url = f"/v1/agentExecutions/{execution_id}/events"
        async with client.stream("GET", url, params={"afterSequence": str(middle)}) as response:
            events = [m.data async for m in sse_messages(response) if m.event == "event"]
        bad = await client.get(url, headers={"Last-Event-ID": "yesterday"})
        missing = await client.get("/v1/agentExecutions/ae-nope/events")

    assert events == [e for e in log if int(e["sequence"]) > middle]
    assert bad.status_code == 400
    assert bad.json()["fieldViolations"][0]["field"] == "Last-Event-ID"
    # Errors before the stream starts are plain problem+json responses.
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


async def test_a_hundred_concurrent_subscribers_all_get_the_identical_sequence(
    temporal_client: Client, tmp_path: Path
) -> None:
    subscribers = 100
    fleet = await start_fleet(
        temporal_client, tmp_path, api={"api_max_watches_per_caller": subscribers + 10}
    )
    async with stopping(fleet):
        execution_id = await start(fleet, paced_agent(100))
        url = f"/v1/agentExecutions/{execution_id}/events"
        async with http_client(fleet, connections=subscribers) as client:

            async def subscribe() -> list[tuple[str | None, dict[str, Any]]]:
                async with client.stream("GET", url) as response:
                    assert response.status_code == 200, await response.aread()
                    return [
                        (m.id, m.data) async for m in sse_messages(response) if m.event == "event"
                    ]

            began = time.monotonic()
            received = await asyncio.gather(*(subscribe() for _ in range(subscribers)))
            took = time.monotonic() - began
        log = as_json(await grpc_events(fleet, execution_id))

    expected = [(event["sequence"], event) for event in log]
    assert all(sequence == expected for sequence in received)
    assert log[-1]["phase"] == "EXECUTION_PHASE_COMPLETED"
    print(
        f"\nSSE fan-out: {subscribers} subscribers each got all {len(log)} events in {took:.2f} s"
    )


async def test_the_change_stream_reports_creation_and_phases_and_resumes(fleet: Fleet) -> None:
    async with http_client(fleet, Role.READER) as client:
        changes: list[SseMessage] = []
        async with client.stream("GET", "/v1/executions:watch") as response:
            assert response.status_code == 200
            execution_id = await start(fleet, paced_agent(0))
            async for message in sse_messages(response):
                assert message.event == "change"
                changes.append(message)
                execution = message.data.get("agentExecution", {})
                if execution.get("status", {}).get("phase") == "EXECUTION_PHASE_COMPLETED":
                    break
        mine = [m for m in changes if m.data["agentExecution"]["id"] == execution_id]
        assert mine[0].data["type"] == "EXECUTION_CHANGE_TYPE_CREATED"
        assert [int(m.id or 0) for m in changes] == sorted(int(m.id or 0) for m in changes)
        assert all(m.id == m.data["sequence"] for m in changes)

        # Resuming from the first change replays the ones after it.
        replayed: list[SseMessage] = []
        headers = {"Last-Event-ID": str(changes[0].id)}
        async with client.stream("GET", "/v1/executions:watch", headers=headers) as response:
            async for message in sse_messages(response):
                replayed.append(message)
                if message.id == changes[-1].id:
                    break
    assert [m.data for m in replayed] == [m.data for m in changes[1:]]


async def test_a_disconnected_client_frees_its_watch(
    temporal_client: Client, tmp_path: Path
) -> None:
    # One watch per caller: a stream left open behind a disconnected client would refuse
    # the next one with 429 until the execution ends, twelve seconds from now.
    fleet = await start_fleet(temporal_client, tmp_path, api={"api_max_watches_per_caller": 1})
    async with stopping(fleet):
        execution_id = await start(fleet, paced_agent(1000))
        url = f"/v1/agentExecutions/{execution_id}/events"
        async with http_client(fleet) as client:
            async with client.stream("GET", url) as response:
                assert response.status_code == 200
                # Held: a dropped generator would close the response when collected.
                messages = sse_messages(response)
                assert (await anext(messages)).event == "snapshot"
                # The limit holds while the stream is open.
                refused = await client.get(url)
                assert refused.status_code == 429, refused.text

            async def reopen() -> int:
                async with client.stream("GET", url) as again:
                    return again.status_code

            await assert_eventually(reopen, lambda status: status == 200, timeout=5)
            # ... while the execution, and so the first stream's Watch, would still go on.
            running = await fleet.executions.GetAgentExecution(
                agent_execution_pb2.GetAgentExecutionRequest(id=execution_id)
            )
            assert running.status.phase in (
                common_pb2.EXECUTION_PHASE_PENDING,
                common_pb2.EXECUTION_PHASE_RUNNING,
            )


async def test_shutdown_ends_open_streams_cleanly(temporal_client: Client, tmp_path: Path) -> None:
    fleet = await start_fleet(temporal_client, tmp_path)
    async with stopping(fleet):
        execution_id = await start(fleet, paced_agent(1000))
        url = f"/v1/agentExecutions/{execution_id}/events"
        async with http_client(fleet) as client, client.stream("GET", url) as response:
            messages = sse_messages(response)
            assert (await anext(messages)).event == "snapshot"
            fleet.orchestrator.shutdown()
            began = time.monotonic()
            # The stream ends (a clean end of the body, no protocol error) well before the
            # execution would have: HTTP stops first, without waiting for its streams.
            rest = [message async for message in messages]
            took = time.monotonic() - began
    assert took < 5, f"the stream outlived the shutdown by {took:.1f} s"
    assert all(m.data.get("phase") != "EXECUTION_PHASE_COMPLETED" for m in rest)
