"""Fixtures for the Graphton runtime: a fleet whose runner knows test secrets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest_asyncio
from google.protobuf.json_format import MessageToDict
from temporalio.client import Client

from polyfleet.config import RunnerSettings
from polyfleet.roles import Role
from polyfleet.v1 import agent_execution_pb2, agent_pb2
from runner import Runner, RunnerAppSettings
from tests import helpers
from tests.conftest import Fleet, _ready, start_fleet, stop_fleet
from tests.integration.graphton.fake_openai import FakeOpenAI

# Recognisable, so a test can prove it never shows up where it must not.
FAKE_API_KEY = "sk-test-FAKE-KEY-0123456789abcdef"
TOOL_TOKEN = "tool-token-SECRET-9876"
MCP_SERVER = Path(__file__).with_name("mcp_server.py")

# The graphton tests' name for the shared helper.
create = helpers.create_agent_execution


def write_secrets(path: Path) -> Path:
    """A dotenv secrets file with the test secrets."""
    path.write_text(f'OPENAI_KEY="{FAKE_API_KEY}"\nTOOL_TOKEN={TOOL_TOKEN}\n')
    return path


def runner_settings(secrets_file: Path) -> RunnerSettings:
    """Settings for a fast test runner that only knows the secrets file."""
    return RunnerSettings(
        heartbeat_interval=timedelta(seconds=1),
        secrets_file=secrets_file,
        secrets_from_environment=False,
        model_retry_initial_backoff=timedelta(milliseconds=50),
        model_retry_max_backoff=timedelta(milliseconds=200),
        workflows=False,
    )


async def start_runner(fleet: Fleet, secrets: Path) -> None:
    """Start an in-process runner with the test secrets file on the fleet's queues."""
    fleet.runner = Runner(
        RunnerAppSettings(
            api=fleet.client_settings(Role.RUNNER),
            queues=fleet.queues,
            runner=runner_settings(secrets),
            shutdown_grace=1.0,
        ),
        temporal=fleet.temporal,
    )
    fleet.tasks.append(asyncio.create_task(fleet.runner.run()))
    await _ready(fleet.runner.wait_ready(), fleet.tasks[-1])


async def stop_runner(fleet: Fleet) -> None:
    """Stop the fleet's in-process runner (the orchestrator keeps running)."""
    assert fleet.runner is not None
    fleet.runner.shutdown()
    task = fleet.tasks.pop()
    await asyncio.wait_for(task, 30)
    fleet.runner = None


@pytest_asyncio.fixture
async def gfleet(temporal_client: Client, tmp_path: Path) -> AsyncIterator[Fleet]:
    """An orchestrator and one in-process runner with the test secrets file."""
    fleet = await start_fleet(temporal_client, tmp_path / "data", with_runner=False)
    try:
        await start_runner(fleet, write_secrets(tmp_path / "secrets.env"))
        yield fleet
    finally:
        await stop_fleet(fleet)


def openai_agent(
    name: str, server: FakeOpenAI, *, instructions: str = "You are a test agent."
) -> agent_pb2.Agent:
    """An agent on the fake OpenAI server, with its key from the secrets file."""
    return agent_pb2.Agent(
        name=name,
        instructions=instructions,
        model=agent_pb2.ModelConfig(
            provider="openai",
            model="fake-model",
            base_url=server.url,
            api_key_secret="OPENAI_KEY",
            retry=agent_pb2.ModelRetry(max_attempts=2),
        ),
        secrets=["OPENAI_KEY"],
    )


def stdio_mcp(
    name: str = "tools", *allowed: str, env: dict[str, str] | None = None
) -> agent_pb2.McpServer:
    """The test MCP server over stdio, run with this interpreter."""
    return agent_pb2.McpServer(
        name=name,
        stdio=agent_pb2.McpStdio(command="{python}", args=[str(MCP_SERVER)], env=env),
        allowed_tools=list(allowed),
    )


async def apply(fleet: Fleet, agent: agent_pb2.Agent) -> None:
    await fleet.agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=agent))


async def get(fleet: Fleet, execution_id: str) -> agent_execution_pb2.AgentExecution:
    return await fleet.executions.GetAgentExecution(
        agent_execution_pb2.GetAgentExecutionRequest(id=execution_id)
    )


async def wait_terminal(
    fleet: Fleet, execution_id: str, timeout: float = 30
) -> agent_execution_pb2.AgentExecution:
    return await helpers.wait_terminal(fleet.client.agent_executions, execution_id, timeout)


def as_json(execution: agent_execution_pb2.AgentExecution) -> str:
    return json.dumps(MessageToDict(execution))
