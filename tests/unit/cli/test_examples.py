"""The examples: the MCP server speaks real MCP over stdio, documented manifests are valid,
``order-flow`` runs on the DSL engine with and without the demo's local price catalog.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import TextContent

from polyfleet.cli import dev
from polyfleet.dsl import Engine, load_document
from polyfleet.manifest import PYTHON_PLACEHOLDER, load_manifests, load_resources, parse_resources
from polyfleet.v1 import workflow_pb2
from tests.unit.dsl.support import Hooks

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
PRICES = EXAMPLES / "http" / "prices.json"


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


def order_flow() -> dict[str, Any]:
    (workflow,) = load_resources(dev.demo_workflow_manifest())
    assert isinstance(workflow, workflow_pb2.Workflow)
    return load_document(workflow.document)


async def run_order_flow(workflow_input: dict[str, Any], hooks: Hooks) -> Any:
    # No proxy from the environment: the catalog is on the loopback interface.
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        return await Engine(order_flow(), hooks, http=http).run(workflow_input)


def expected_total(items: list[dict[str, Any]]) -> float:
    prices: dict[str, float] = json.loads(PRICES.read_text(encoding="utf-8"))["prices"]
    return sum(float(item["qty"]) * prices[item["sku"]] for item in items)


async def test_order_flow_totals_the_order_with_the_prices_of_the_local_catalog() -> None:
    hooks = Hooks()
    order = dict(dev.DEMO_ORDER)

    with dev.serve_directory(PRICES.parent) as catalog:
        output = await run_order_flow({**order, "catalog": catalog}, hooks)

    assert catalog.startswith("http://127.0.0.1:")
    assert output["total"] == expected_total(order["items"]) == 31.25
    assert output["currency"] == "EUR"
    assert (output["customer"], output["units"], output["shipping"]) == ("Ada", 7, "freight")
    assert output["about"] == "assistant: What is polyfleet?"
    assert hooks.agent_calls == [("assistant", "What is polyfleet?", "/do/1/ask")]
    prices = hooks.last("/do/2/prices")
    assert (prices.type, prices.phase) == ("call:http", "COMPLETED")
    assert hooks.last("/do/7/bill").phase == "COMPLETED"


async def test_order_flow_skips_the_http_call_and_the_total_without_a_catalog() -> None:
    hooks = Hooks()

    output = await run_order_flow({"customer": "Bo", "items": [{"sku": "pen", "qty": 1}]}, hooks)

    assert hooks.last("/do/2/prices").phase == "SKIPPED"
    assert hooks.last("/do/7/bill").phase == "SKIPPED"
    assert (output["total"], output["currency"]) == (None, None)
    assert output["receipt"] == "1 units: pen"


def test_the_demo_catalog_server_serves_the_examples_and_stops() -> None:
    with dev.serve_directory(PRICES.parent) as catalog:
        response = httpx.get(f"{catalog}/prices.json", trust_env=False, timeout=10)
        missing = httpx.get(f"{catalog}/nope.json", trust_env=False, timeout=10)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == json.loads(PRICES.read_text(encoding="utf-8"))
    assert missing.status_code == 404
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{catalog}/prices.json", trust_env=False, timeout=2)
