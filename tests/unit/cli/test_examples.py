"""The examples: the MCP server speaks real MCP over stdio, documented manifests are valid."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import TextContent

from polyfleet.manifest import PYTHON_PLACEHOLDER, load_manifests, parse_resources

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"


def text_of(result: object) -> str:
    content = getattr(result, "content", [])
    return "".join(part.text for part in content if isinstance(part, TextContent))


@pytest.mark.timeout(60)
async def test_weather_server_answers_over_stdio_as_the_example_agent_starts_it() -> None:
    (agent,) = load_manifests(EXAMPLES / "agents" / "assistant.yaml")
    stdio = agent.mcp_servers[0].stdio
    # What the runner does with the placeholder: its own interpreter.
    command = sys.executable if stdio.command == PYTHON_PLACEHOLDER else stdio.command
    params = StdioServerParameters(command=command, args=list(stdio.args), cwd="/")

    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = await session.list_tools()
        weather = await session.call_tool("get_weather", {"city": "Paris"})
        unknown = await session.call_tool("get_weather", {"city": "Atlantis"})
        total = await session.call_tool("add", {"a": 2, "b": 3.5})

    assert {tool.name for tool in tools.tools} == {"get_weather", "add"}
    assert set(agent.mcp_servers[0].allowed_tools) <= {tool.name for tool in tools.tools}
    assert text_of(weather) == "sunny, 21 °C, light breeze from the west"
    assert "no data for 'Atlantis'" in text_of(unknown)
    assert text_of(total) == "5.5"
    assert not weather.isError


@pytest.mark.parametrize("document", ["README.md", "docs/cli.md"])
def test_manifests_in_the_docs_are_valid(document: str) -> None:
    text = (REPO / document).read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL) if "apiVersion" in b]

    assert blocks
    kinds: set[str] = set()
    for block in blocks:
        resources = parse_resources(block, document)
        kinds.update(type(resource).__name__ for resource in resources)
    # Both kinds are documented with a complete example.
    assert kinds == {"Agent", "Workflow"}


def test_every_example_agent_loads() -> None:
    files = sorted((EXAMPLES / "agents").glob("*.yaml"))

    assert len(files) >= 2
    for file in files:
        assert load_manifests(file)
