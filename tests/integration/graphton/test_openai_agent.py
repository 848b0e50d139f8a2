"""Agents on a real OpenAI-compatible client against a local fake server, with MCP tools."""

from __future__ import annotations

import asyncio
import json
import time

from polyfleet.v1 import agent_execution_pb2, agent_pb2, common_pb2
from tests.conftest import Fleet
from tests.integration.graphton.conftest import (
    FAKE_API_KEY,
    TOOL_TOKEN,
    apply,
    as_json,
    create,
    openai_agent,
    stdio_mcp,
    wait_terminal,
)
from tests.integration.graphton.fake_openai import (
    FakeOpenAI,
    Recorded,
    Reply,
    content_text,
    tool_then_answer,
)
from tests.integration.graphton.mcp_http import HttpMcpServer

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED


async def _watch_timed(
    fleet: Fleet, execution_id: str
) -> list[tuple[float, common_pb2.ExecutionEvent]]:
    """Every event of the execution with the time this subscriber received it."""
    stream = fleet.executions.WatchAgentExecution(
        agent_execution_pb2.WatchAgentExecutionRequest(id=execution_id)
    )
    events = []
    async for item in stream:
        if item.HasField("event"):
            events.append((time.monotonic(), item.event))
    return events


async def test_agent_calls_an_mcp_tool_and_streams_its_answer(gfleet: Fleet) -> None:
    answer = "The weather: {tool_result}. Enjoy your day in Paris!"
    responder = tool_then_answer("weather", {"city": "Paris"}, answer)

    def slow_answer(request: Recorded) -> Reply:
        reply = responder(request)
        reply.chunk_delay = 0.05  # ~1.5 s of streaming, so deltas arrive live
        reply.prompt_tokens, reply.completion_tokens = (20 + len(request.messages), 9)
        return reply

    with FakeOpenAI(slow_answer) as server:
        agent = openai_agent("weather-agent", server)
        agent.mcp_servers.append(stdio_mcp("tools", "weather"))
        await apply(gfleet, agent)
        created = await create(gfleet, "weather-agent", "What's the weather in Paris?")
        timed = await asyncio.wait_for(_watch_timed(gfleet, created.id), 60)
        done = await wait_terminal(gfleet, created.id)

    expected = "The weather: Sunny and 21 degrees in Paris. Enjoy your day in Paris!"
    assert done.status.phase == COMPLETED, done.status.error
    assert done.status.output_text == expected

    # The tool call, with its arguments and the MCP server's result.
    (call,) = done.status.tool_calls
    assert call.name == "weather"
    assert dict(call.arguments) == {"city": "Paris"}
    assert call.result == "Sunny and 21 degrees in Paris"
    assert call.status == common_pb2.TOOL_CALL_STATUS_SUCCEEDED
    assert call.start_time.ToNanoseconds() <= call.end_time.ToNanoseconds()
    roles = [m.role for m in done.status.messages if m.role != common_pb2.MESSAGE_ROLE_USER]
    assert roles == [common_pb2.MESSAGE_ROLE_TOOL, common_pb2.MESSAGE_ROLE_ASSISTANT]
    assert done.status.messages[-1].content == expected

    # Deltas reached the live subscriber well before the terminal event, batched.
    events = [e for _, e in timed]
    deltas = [(t, e) for t, e in timed if e.update.content_delta]
    assert "".join(e.update.content_delta for _, e in deltas) == expected
    terminal_time = next(t for t, e in timed if e.phase == COMPLETED)
    assert deltas[0][0] < terminal_time - 0.5
    assert len(deltas) < len(expected) / 4  # fewer reports than the server's chunks
    assert {e.update.delta_message_id for _, e in deltas} == {done.status.messages[-1].id}
    # In one event or two: the runner sends reports queued meanwhile as one.
    running = [c.status for e in events for c in e.update.tool_calls]
    assert running == [common_pb2.TOOL_CALL_STATUS_RUNNING, common_pb2.TOOL_CALL_STATUS_SUCCEEDED]

    # Usage totals are what the server reported for its two calls.
    assert [len(r.messages) for r in server.requests] == [2, 4]
    usage = done.status.usage
    assert (usage.input_tokens, usage.output_tokens) == (22 + 24, 18)
    assert usage.total_tokens == 22 + 24 + 18
    assert usage.model_calls == 2

    # The request carried the key; the execution does not.
    assert {r.authorization for r in server.requests} == {f"Bearer {FAKE_API_KEY}"}
    assert FAKE_API_KEY not in as_json(done)


async def test_mcp_env_secret_reaches_the_server_but_not_the_status(gfleet: Fleet) -> None:
    with FakeOpenAI(tool_then_answer("whoami", {}, "I am {tool_result}")) as server:
        agent = openai_agent("whoami-agent", server)
        agent.secrets.append("TOOL_TOKEN")
        agent.mcp_servers.append(stdio_mcp("tools", env={"TOOL_TOKEN": "${TOOL_TOKEN}"}))
        await apply(gfleet, agent)
        created = await create(gfleet, "whoami-agent", "who are you?")
        done = await wait_terminal(gfleet, created.id)

    assert done.status.phase == COMPLETED, done.status.error
    # The tool saw the secret (the model got it back) but the status shows it redacted.
    assert TOOL_TOKEN in content_text(server.requests[-1].messages[-1])
    assert done.status.tool_calls[0].result == "token=[REDACTED]"
    assert done.status.output_text == "I am token=[REDACTED]"
    assert TOOL_TOKEN not in as_json(done)


async def test_streamable_http_mcp_server_with_a_secret_header(gfleet: Fleet) -> None:
    with (
        HttpMcpServer() as tools,
        FakeOpenAI(tool_then_answer("greet", {"name": "Ada"}, "It said: {tool_result}")) as server,
    ):
        agent = openai_agent("http-tools-agent", server)
        agent.secrets.append("TOOL_TOKEN")
        agent.mcp_servers.append(
            agent_pb2.McpServer(
                name="remote",
                http=agent_pb2.McpHttp(
                    url=tools.url, headers={"Authorization": "Bearer ${TOOL_TOKEN}"}
                ),
                allowed_tools=["greet"],
            )
        )
        await apply(gfleet, agent)
        done = await wait_terminal(gfleet, (await create(gfleet, "http-tools-agent", "hi")).id)

    assert done.status.phase == COMPLETED, done.status.error
    assert done.status.output_text == "It said: Hello, Ada, from HTTP"
    assert done.status.tool_calls[0].result == "Hello, Ada, from HTTP"
    assert tools.authorizations and set(tools.authorizations) == {f"Bearer {TOOL_TOKEN}"}
    # The model was offered exactly the allowed tool.
    offered = [t["function"]["name"] for t in server.requests[0].body["tools"]]
    assert offered == ["greet"]


async def test_a_later_turn_replays_the_earlier_tool_call_and_its_result(gfleet: Fleet) -> None:
    responder = tool_then_answer("add", {"a": 2, "b": 3}, "The sum is {tool_result}.")
    with FakeOpenAI(responder) as server:
        agent = openai_agent("adder", server)
        agent.mcp_servers.append(stdio_mcp("tools", "add"))
        await apply(gfleet, agent)
        one = await wait_terminal(gfleet, (await create(gfleet, "adder", "Add 2 and 3")).id)
        assert one.status.phase == COMPLETED, one.status.error
        two = await create(gfleet, "adder", "What did the tool return?", one.session_id)
        assert (await wait_terminal(gfleet, two.id)).status.phase == COMPLETED

    # Turn two's first request holds turn one whole, as LangGraph would replay it.
    replayed = server.requests[2].messages
    roles = [m["role"] for m in replayed]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    (call,) = replayed[2]["tool_calls"]
    assert call["function"]["name"] == "add"
    assert json.loads(call["function"]["arguments"]) == {"a": 2, "b": 3}
    assert "2.0" not in call["function"]["arguments"]  # integers stay integers
    assert replayed[3]["tool_call_id"] == call["id"]
    assert content_text(replayed[3]) == "5"
    assert content_text(replayed[4]) == "The sum is 5."
    # The same call ID the model gave in turn one.
    first_call = server.requests[1].messages[2]["tool_calls"][0]
    assert call["id"] == first_call["id"]
