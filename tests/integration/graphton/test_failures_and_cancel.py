"""Provider failures end FAILED without leaking the key; cancellation stops a model call."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import psutil
import pytest
from google.protobuf.struct_pb2 import Struct
from temporalio.client import WorkflowExecutionStatus

from polyfleet.v1 import agent_execution_pb2, agent_pb2, common_pb2
from tests.conftest import Fleet, scripted_agent
from tests.helpers import assert_eventually, workflow_closes_as
from tests.integration.graphton.conftest import (
    FAKE_API_KEY,
    MCP_SERVER,
    apply,
    as_json,
    create,
    get,
    openai_agent,
    stdio_mcp,
    wait_terminal,
)
from tests.integration.graphton.fake_openai import FakeOpenAI, Recorded, Reply

FAILED = common_pb2.EXECUTION_PHASE_FAILED
CANCELLED = common_pb2.EXECUTION_PHASE_CANCELLED
TOOL_RUNNING = common_pb2.TOOL_CALL_STATUS_RUNNING


def _echo_key_401(request: Recorded) -> Reply:
    # Worse than OpenAI, which masks most of the key: echo it whole.
    key = request.authorization.removeprefix("Bearer ")
    return Reply(status=401, error_message=f"Incorrect API key provided: {key}", error_code="k")


async def test_provider_401_fails_with_a_clear_message_and_no_key_anywhere(
    gfleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI(_echo_key_401) as server:
        await apply(gfleet, openai_agent("unauthorized", server))
        created = await create(gfleet, "unauthorized", "hello")
        done = await wait_terminal(gfleet, created.id)

    assert done.status.phase == FAILED
    assert done.status.error.type == "ModelAuthenticationError"
    message = done.status.error.message
    assert "HTTP 401" in message and "Incorrect API key provided: [REDACTED]" in message
    assert server.url in message
    assert len(server.requests) == 1  # never retried
    assert FAKE_API_KEY not in as_json(done)
    assert FAKE_API_KEY not in caplog.text
    handle = gfleet.temporal.get_workflow_handle(created.workflow_id)
    history = await handle.fetch_history()
    assert FAKE_API_KEY not in str(history.to_json())


async def test_provider_500_is_retried_then_fails_as_unavailable(
    gfleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI(lambda _: Reply(status=500, error_message="upstream exploded")) as server:
        await apply(gfleet, openai_agent("flaky", server))  # ModelRetry.max_attempts = 2
        done = await wait_terminal(gfleet, (await create(gfleet, "flaky", "hello")).id)

    assert done.status.phase == FAILED
    assert done.status.error.type == "ModelProviderUnavailable"
    assert "HTTP 500: upstream exploded (after 2 attempts)" in done.status.error.message
    assert len(server.requests) == 2
    assert FAKE_API_KEY not in as_json(done)
    assert FAKE_API_KEY not in caplog.text
    assert "retrying" in caplog.text


async def test_transient_429_then_success_completes(gfleet: Fleet) -> None:
    replies = iter([Reply(status=429, error_message="slow down"), Reply(text="finally")])
    with FakeOpenAI(lambda _: next(replies)) as server:
        await apply(gfleet, openai_agent("patient", server))
        done = await wait_terminal(gfleet, (await create(gfleet, "patient", "hello")).id)
    assert done.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED, done.status.error
    assert done.status.output_text == "finally"
    assert done.status.usage.model_calls == 1  # the failed attempt used no tokens


def _mcp_children() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if str(MCP_SERVER) in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


async def _start_hanging(gfleet: Fleet, server: FakeOpenAI, name: str) -> str:
    agent = openai_agent(name, server)
    agent.mcp_servers.append(stdio_mcp("tools", "add"))
    await apply(gfleet, agent)
    created = await create(gfleet, name, "take forever")
    await assert_eventually(
        lambda: _async(len(server.requests)), lambda n: n == 1, timeout=20, message="no request"
    )
    running = await get(gfleet, created.id)
    assert running.status.phase == common_pb2.EXECUTION_PHASE_RUNNING
    assert _mcp_children(), "the MCP server should run while the agent does"
    return created.id


async def _async(value: int) -> int:
    return value


async def _assert_cancelled_promptly(
    gfleet: Fleet, server: FakeOpenAI, execution_id: str, started: float
) -> None:
    done = await wait_terminal(gfleet, execution_id, timeout=10)
    assert done.status.phase == CANCELLED
    assert time.monotonic() - started < 5
    await assert_eventually(
        lambda: _async(int(server.requests[0].aborted)),
        lambda aborted: aborted == 1,
        timeout=5,
        message="the model request was not aborted",
    )
    assert not server.requests[0].completed
    await assert_eventually(
        lambda: _async(len(_mcp_children())), lambda n: n == 0, timeout=5, message="MCP alive"
    )
    await workflow_closes_as(gfleet.temporal, done.workflow_id, WorkflowExecutionStatus.CANCELED)


async def test_cancel_rpc_mid_model_call_stops_the_request_and_mcp(gfleet: Fleet) -> None:
    with FakeOpenAI(lambda _: Reply(hang=True)) as server:
        execution_id = await _start_hanging(gfleet, server, "hanging")
        started = time.monotonic()
        await gfleet.executions.CancelAgentExecution(
            agent_execution_pb2.CancelAgentExecutionRequest(id=execution_id)
        )
        await _assert_cancelled_promptly(gfleet, server, execution_id, started)


async def test_workflow_cancel_mid_model_call_stops_the_request_and_mcp(gfleet: Fleet) -> None:
    """The runner side alone: Temporal cancels the workflow, as the Cancel RPC does."""
    with FakeOpenAI(lambda _: Reply(hang=True)) as server:
        execution_id = await _start_hanging(gfleet, server, "hanging-too")
        execution = await get(gfleet, execution_id)
        started = time.monotonic()
        await gfleet.temporal.get_workflow_handle(execution.workflow_id).cancel()
        await _assert_cancelled_promptly(gfleet, server, execution_id, started)


async def test_cancel_while_a_tool_runs_ends_the_tool_call_cancelled(gfleet: Fleet) -> None:
    agent = scripted_agent(name="stuck")
    arguments = Struct()
    arguments.update({"label": "forever"})
    agent.model.scripted.rules.add(
        pattern="hang",
        reply="unreachable",
        tool_call=agent_pb2.ScriptedToolCall(name="hang", arguments=arguments),
    )
    agent.mcp_servers.append(stdio_mcp("tools", "hang"))
    await apply(gfleet, agent)
    created = await create(gfleet, "stuck", "please hang")
    await assert_eventually(
        lambda: get(gfleet, created.id),
        lambda e: any(c.status == TOOL_RUNNING for c in e.status.tool_calls),
        timeout=20,
        message="the tool call did not start",
    )
    await gfleet.executions.CancelAgentExecution(
        agent_execution_pb2.CancelAgentExecutionRequest(id=created.id)
    )
    done = await wait_terminal(gfleet, created.id)

    assert done.status.phase == CANCELLED
    [call] = done.status.tool_calls
    assert call.name == "hang"
    assert call.status == common_pb2.TOOL_CALL_STATUS_CANCELLED
    assert call.end_time == done.status.end_time
    assert "ended CANCELLED" in call.error
    # A watcher replaying the event log sees the call close too.
    closed = [
        item.event.update
        async for item in gfleet.executions.WatchAgentExecution(
            agent_execution_pb2.WatchAgentExecutionRequest(id=created.id)
        )
        if item.HasField("event") and item.event.phase == CANCELLED
    ]
    assert [c.status for c in closed[0].tool_calls] == [common_pb2.TOOL_CALL_STATUS_CANCELLED]


async def test_model_failure_with_open_mcp_sessions_keeps_its_type(gfleet: Fleet) -> None:
    agent = scripted_agent(name="explosive")
    agent.model.scripted.rules.add(pattern="explode", error="the model was told to explode")
    agent.mcp_servers.append(stdio_mcp("tools"))
    await apply(gfleet, agent)
    done = await wait_terminal(gfleet, (await create(gfleet, "explosive", "explode")).id)
    assert done.status.phase == FAILED
    assert done.status.error.type == "ModelProviderError"
    assert done.status.error.message.endswith("the model was told to explode")
    await assert_eventually(
        lambda: _async(len(_mcp_children())), lambda n: n == 0, timeout=5, message="MCP alive"
    )


async def test_runner_workers_heartbeat_without_the_sdks_long_throttle(gfleet: Fleet) -> None:
    assert gfleet.runner is not None
    for worker in gfleet.runner.workers:
        config = worker.config()
        assert config.get("max_heartbeat_throttle_interval") == timedelta(seconds=1)
        assert config.get("default_heartbeat_throttle_interval") == timedelta(seconds=1)


async def test_malformed_stream_fails_as_an_invalid_response(gfleet: Fleet) -> None:
    with FakeOpenAI(lambda _: Reply(text="never", malformed=True)) as server:
        await apply(gfleet, openai_agent("garbled", server))
        done = await wait_terminal(gfleet, (await create(gfleet, "garbled", "hello")).id)
    assert done.status.phase == FAILED
    assert done.status.error.type == "ModelResponseInvalid", done.status.error
    assert "malformed response" in done.status.error.message
    assert len(server.requests) == 1  # not retried
