"""RunnerService calls ride out an unavailable orchestrator until the activity's deadline."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import grpc
import pytest
from temporalio.testing import ActivityEnvironment

from polyfleet.v1 import agent_execution_pb2, common_pb2, runner_pb2, workflow_execution_pb2
from runner.errors import ExecutionClosedError, OrchestratorUnavailableError
from runner.runner_client import RunnerClient, activity_time_left
from tests.helpers import assert_eventually, rpc_error

_UPDATE = common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_RUNNING)


class FlakyChannel:
    """A stand-in for a channel to an orchestrator that answers ``code`` ``failures`` times.

    Every call is recorded as (method, request, timeout); after the failures, calls
    succeed with an empty response.
    """

    def __init__(self, failures: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        self.failures = failures
        self.code = code
        self.calls: list[tuple[str, Any, float | None]] = []
        # What a stream answers once the failures are over.
        self.stream_payload = b""

    def unary_unary(
        self, method: str, response_deserializer: Callable[[bytes], Any], **_: Any
    ) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, timeout: float | None = None, **_: Any) -> Any:
            self.calls.append((method, request, timeout))
            if len(self.calls) <= self.failures:
                raise rpc_error(self.code, f"{self.code.name.lower()} #{len(self.calls)}")
            return response_deserializer(b"")

        return call

    def unary_stream(
        self, method: str, response_deserializer: Callable[[bytes], Any], **_: Any
    ) -> Callable[..., Any]:
        channel = self

        class Stream:
            def __init__(self, request: Any, timeout: float | None = None, **_: Any) -> None:
                channel.calls.append((method, request, timeout))
                self.failed = len(channel.calls) <= channel.failures
                self.cancelled = False

            def __aiter__(self) -> Any:
                return self._responses()

            async def _responses(self) -> Any:
                if self.failed:
                    raise rpc_error(channel.code, "stream broke")
                yield response_deserializer(channel.stream_payload)

            def cancel(self) -> bool:
                self.cancelled = True
                return True

        return Stream


def _client(channel: FlakyChannel, time_left: float | None = 600.0) -> RunnerClient:
    return RunnerClient(
        cast("grpc.aio.Channel", channel),
        timeout=10.0,
        initial_backoff=0.001,
        max_backoff=0.002,
        time_left=lambda: time_left,
    )


async def test_a_report_is_retried_through_an_outage_with_the_same_report_id() -> None:
    # 30 failures: six times the five attempts that used to fail the activity.
    channel = FlakyChannel(failures=30)
    response = await _client(channel).report("aex-1", "run/1/1/7", _UPDATE)
    assert isinstance(response, runner_pb2.ReportProgressResponse)
    assert len(channel.calls) == 31
    assert {c[0] for c in channel.calls} == {"/polyfleet.v1.RunnerService/ReportProgress"}
    assert {c[1].report_id for c in channel.calls} == {"run/1/1/7"}


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED], ids=lambda c: c.name
)
async def test_other_transient_codes_are_retried(code: grpc.StatusCode) -> None:
    channel = FlakyChannel(failures=8, code=code)
    await _client(channel).ensure_thread("aex-1")
    assert len(channel.calls) == 9


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,  # also a message over the size limit
    ],
    ids=lambda c: c.name,
)
async def test_other_codes_fail_at_once(code: grpc.StatusCode) -> None:
    channel = FlakyChannel(failures=1, code=code)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _client(channel).report("aex-1", "r/1", _UPDATE)
    assert raised.value.code() == code
    assert len(channel.calls) == 1


async def test_a_terminal_execution_stops_the_report_at_once() -> None:
    channel = FlakyChannel(failures=1, code=grpc.StatusCode.FAILED_PRECONDITION)
    with pytest.raises(ExecutionClosedError):
        await _client(channel).report("aex-1", "r/1", _UPDATE)
    assert len(channel.calls) == 1


async def test_retries_end_at_the_activity_deadline() -> None:
    channel = FlakyChannel(failures=10**9)
    with pytest.raises(OrchestratorUnavailableError) as raised:
        await _client(channel, time_left=0.05).report("aex-1", "r/1", _UPDATE)
    assert "ReportProgress" in str(raised.value)
    assert "deadline" in str(raised.value)
    assert len(channel.calls) > 1
    # No attempt may run past the deadline.
    assert all(timeout is not None and timeout <= 0.05 for _, _, timeout in channel.calls)


async def test_a_call_past_the_deadline_gets_one_attempt() -> None:
    channel = FlakyChannel(failures=10**9)
    with pytest.raises(OrchestratorUnavailableError):
        await _client(channel, time_left=-1.0).report("aex-1", "r/1", _UPDATE)
    assert len(channel.calls) == 1


async def test_cancellation_stops_the_retries() -> None:
    channel = FlakyChannel(failures=10**9)
    task = asyncio.create_task(_client(channel).report("aex-1", "r/1", _UPDATE))
    await assert_eventually(lambda: _count(channel), lambda n: n >= 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _count(channel: FlakyChannel) -> int:
    return len(channel.calls)


def test_the_deadline_is_the_earlier_of_start_to_close_and_schedule_to_close() -> None:
    now = datetime.now(UTC)
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        ActivityEnvironment.default_info(),
        scheduled_time=now - timedelta(seconds=50),
        started_time=now - timedelta(seconds=10),
        start_to_close_timeout=timedelta(minutes=10),
        schedule_to_close_timeout=timedelta(minutes=1),
    )
    assert 5 < (env.run(activity_time_left) or 0) <= 10
    env.info = dataclasses.replace(env.info, schedule_to_close_timeout=None)
    assert 580 < (env.run(activity_time_left) or 0) <= 590
    env.info = dataclasses.replace(env.info, start_to_close_timeout=None)
    assert env.run(activity_time_left) is None


def test_outside_an_activity_there_is_no_deadline() -> None:
    assert activity_time_left() is None


async def test_reading_a_child_through_its_watch_is_retried_through_an_outage() -> None:
    channel = FlakyChannel(failures=3)
    channel.stream_payload = agent_execution_pb2.WatchAgentExecutionResponse(
        snapshot=agent_execution_pb2.AgentExecution(id="aex-2")
    ).SerializeToString()
    child = await _client(channel).get_child("wex-1", "aex-2")
    assert child.id == "aex-2"
    assert [c[0] for c in channel.calls] == [
        "/polyfleet.v1.RunnerService/WatchChildAgentExecution"
    ] * 4
    assert {(c[1].execution_id, c[1].child_execution_id) for c in channel.calls} == {
        ("wex-1", "aex-2")
    }


async def test_a_child_workflow_is_read_through_its_watch_and_a_stream_without_one_fails() -> None:
    channel = FlakyChannel(failures=1)
    channel.stream_payload = workflow_execution_pb2.WatchWorkflowExecutionResponse(
        snapshot=workflow_execution_pb2.WorkflowExecution(id="wex-2")
    ).SerializeToString()
    assert (await _client(channel).get_child_workflow("wex-1", "wex-2")).id == "wex-2"
    assert [c[0] for c in channel.calls] == [
        "/polyfleet.v1.RunnerService/WatchChildWorkflowExecution"
    ] * 2
    # A stream that ends before its snapshot is the orchestrator's failure, named as such.
    channel.stream_payload = b""  # an empty response: neither snapshot nor event
    with pytest.raises(OrchestratorUnavailableError, match="wex-2 ended without a snapshot"):
        await _client(channel).get_child_workflow("wex-1", "wex-2")
