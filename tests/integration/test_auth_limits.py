"""Per-caller limits over real gRPC: concurrent Watch streams and the rate of Creates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from temporalio.client import Client

from polyfleet.error_details import error_info
from polyfleet.roles import Role
from polyfleet.v1 import agent_execution_pb2, agent_execution_pb2_grpc
from tests.conftest import scripted_agent, start_fleet, stopping
from tests.helpers import assert_eventually

if TYPE_CHECKING:
    from polyfleet.v1.agent_execution_pb2_grpc import AgentExecutionServiceAsyncStub


def _create() -> agent_execution_pb2.CreateAgentExecutionRequest:
    return agent_execution_pb2.CreateAgentExecutionRequest(
        execution=agent_execution_pb2.AgentExecution(agent="assistant", message="hi")
    )


def _is_snapshot(response: object) -> bool:
    return isinstance(
        response, agent_execution_pb2.WatchAgentExecutionResponse
    ) and response.HasField("snapshot")


async def test_creates_past_a_callers_rate_are_refused_and_other_callers_go_on(
    temporal_client: Client, tmp_path: Path
) -> None:
    limits = {"api_create_rate_per_caller": 0.001, "api_create_burst_per_caller": 2}
    fleet = await start_fleet(temporal_client, tmp_path, with_runner=False, api=limits)
    async with stopping(fleet):
        await fleet.client.agents.apply(scripted_agent())
        operator = fleet.channel_as(Role.OPERATOR)
        try:
            executions = agent_execution_pb2_grpc.AgentExecutionServiceStub(operator)
            for _ in range(2):
                await executions.CreateAgentExecution(_create())
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await executions.ExecuteAgent(
                    agent_execution_pb2.ExecuteAgentRequest(request=_create())
                )
        finally:
            await operator.close()
        assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "dev-operator is over its limit of 0.001 creates per second" in (
            raised.value.details() or ""
        )
        info = error_info(raised.value)
        assert info is not None and info.metadata["kind"] == "create-rate"
        # Another caller has its own bucket.
        await fleet.executions.CreateAgentExecution(_create())


async def test_watch_streams_past_a_callers_limit_are_refused_until_one_closes(
    temporal_client: Client, tmp_path: Path
) -> None:
    fleet = await start_fleet(
        temporal_client, tmp_path, with_runner=False, api={"api_max_watches_per_caller": 1}
    )
    async with stopping(fleet):
        await fleet.client.agents.apply(scripted_agent())
        created = await fleet.executions.CreateAgentExecution(_create())
        reader = fleet.channel_as(Role.READER)
        try:
            stub: AgentExecutionServiceAsyncStub = (
                agent_execution_pb2_grpc.AgentExecutionServiceStub(reader)
            )
            watch = agent_execution_pb2.WatchAgentExecutionRequest(id=created.id)
            first = stub.WatchAgentExecution(watch)
            assert _is_snapshot(await first.read())
            second = stub.WatchAgentExecution(watch)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await second.read()
            assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "dev-reader already has 1 Watch streams open" in (raised.value.details() or "")
            first.cancel()

            async def reopened() -> bool:
                # The server frees the stream when it sees the cancel: soon, not at once.
                again = stub.WatchAgentExecution(watch)
                try:
                    return _is_snapshot(await again.read())
                except grpc.aio.AioRpcError:
                    return False
                finally:
                    again.cancel()

            await assert_eventually(reopened, bool, timeout=10)
        finally:
            await reader.close()
