"""The API is the authority on agent definitions: raw gRPC gets the CLI's rules too.

A literal credential in an MCP server's ``stdio.env`` or ``http.headers`` was once refused
only by the CLI's manifest layer; ``ApplyAgent``, ``CreateAgent`` and ``UpdateAgent``
stored it. No CLI is involved here: requests go straight to a real orchestrator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from temporalio.client import Client

from polyfleet.error_details import field_violations
from polyfleet.v1 import agent_pb2
from tests.conftest import Fleet, scripted_agent, start_fleet, stopping

SECRET_VALUE = "sk-live-do-not-echo-0123456789"


@pytest_asyncio.fixture
async def api(temporal_client: Client, tmp_path: Path) -> AsyncIterator[Fleet]:
    """An orchestrator alone: validation needs no runner."""
    async with stopping(await start_fleet(temporal_client, tmp_path, with_runner=False)) as fleet:
        yield fleet


def _with_stdio_env_key() -> agent_pb2.Agent:
    agent = scripted_agent("leaky-stdio")
    agent.mcp_servers.add(
        name="tools",
        stdio=agent_pb2.McpStdio(command="server", env={"OPENAI_API_KEY": SECRET_VALUE}),
    )
    return agent


def _with_http_header_key() -> agent_pb2.Agent:
    agent = scripted_agent("leaky-http")
    agent.mcp_servers.add(
        name="remote",
        http=agent_pb2.McpHttp(
            url="http://127.0.0.1:9/mcp", headers={"Authorization": f"Bearer {SECRET_VALUE}"}
        ),
    )
    return agent


CASES = [
    (_with_stdio_env_key, "agent.mcp_servers[0].stdio.env[OPENAI_API_KEY]"),
    (_with_http_header_key, "agent.mcp_servers[0].http.headers[Authorization]"),
]


async def _refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value


@pytest.mark.parametrize(("make", "field"), CASES, ids=["stdio-env", "http-header"])
async def test_a_literal_credential_is_invalid_argument_naming_the_field(
    api: Fleet, make: object, field: str
) -> None:
    agent = make()  # type: ignore[operator]
    requests = [
        api.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=agent)),
        api.agents.CreateAgent(agent_pb2.CreateAgentRequest(agent=agent)),
    ]
    for call in requests:
        err = await _refused(call)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in field_violations(err)] == [field]
        assert "literal credential" in (err.details() or "")
        assert SECRET_VALUE not in str(err)
        assert SECRET_VALUE not in repr(field_violations(err))
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await api.agents.GetAgent(agent_pb2.GetAgentRequest(name=agent.name))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_an_update_cannot_add_a_literal_credential(api: Fleet) -> None:
    stored = await api.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=scripted_agent("clean")))
    leaky = _with_stdio_env_key()
    leaky.name = stored.name
    err = await _refused(api.agents.UpdateAgent(agent_pb2.UpdateAgentRequest(agent=leaky)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in field_violations(err)] == [CASES[0][1]]
    after = await api.agents.GetAgent(agent_pb2.GetAgentRequest(name=stored.name))
    assert after.version == stored.version
    assert not after.mcp_servers
