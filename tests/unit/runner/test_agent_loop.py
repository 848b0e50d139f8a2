"""The built-in agent loop: one compiled graph shared by agents with different parts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool

from polyfleet.config import MetricsSettings
from polyfleet.telemetry.metrics import setup_metrics
from runner.graphton.agent import build_agent_graph
from runner.graphton.retry import ModelCall
from tests.helpers import free_port, http_get


def _tool(name: str, result: str) -> BaseTool:
    async def run() -> str:
        return result

    return StructuredTool.from_function(coroutine=run, name=name, description=name)


def _model(name: str) -> ModelCall:
    """Calls the tool ``lookup`` once, then answers with its instructions and the result."""

    async def call(messages: Sequence[BaseMessage], config: RunnableConfig) -> AIMessage:
        await asyncio.sleep(0.01)  # let the other agent's run interleave
        if not any(m.type == "tool" for m in messages):
            return AIMessage(content="", tool_calls=[{"name": "lookup", "args": {}, "id": name}])
        system = next(m.text for m in messages if isinstance(m, SystemMessage))
        return AIMessage(content=f"{system} / {messages[-1].text}")

    return call


async def test_two_agents_share_the_graph_but_not_their_model_tools_or_instructions() -> None:
    first = build_agent_graph(_model("a"), [_tool("lookup", "result-a")], "I am A")
    second = build_agent_graph(_model("b"), [_tool("lookup", "result-b")], "I am B")
    inputs = {"messages": [HumanMessage(content="go")]}
    a, b = await asyncio.gather(first.ainvoke(inputs), second.ainvoke(inputs))
    assert a["messages"][-1].text == "I am A / result-a"
    assert b["messages"][-1].text == "I am B / result-b"


def _inventive_model() -> ModelCall:
    """Calls ``lookup``, then a tool the agent does not have, then answers."""

    async def call(messages: Sequence[BaseMessage], config: RunnableConfig) -> AIMessage:
        done = [m for m in messages if m.type == "tool"]
        if len(done) == 0:
            return AIMessage(content="", tool_calls=[{"name": "lookup", "args": {}, "id": "1"}])
        if len(done) == 1:
            invented = {"name": "rm-rf-everything", "args": {}, "id": "2"}
            return AIMessage(content="", tool_calls=[invented])
        return AIMessage(content="done")

    return call


async def test_tool_calls_are_counted_by_tool_and_invented_names_are_bounded() -> None:
    export = setup_metrics(MetricsSettings(port=free_port(), address="127.0.0.1"), "test", 0)
    try:
        graph = build_agent_graph(_inventive_model(), [_tool("lookup", "found")], "I look")
        result = await graph.ainvoke({"messages": [HumanMessage(content="go")]})
        assert result["messages"][-1].text == "done"
        status, text = await http_get(export.port, "/metrics")
        assert status == 200
    finally:
        export.close()
    calls = [line for line in text.splitlines() if line.startswith("polyfleet_tool_calls_total{")]
    assert any(
        'tool="lookup"' in line and 'error=""' in line and line.endswith(" 1.0") for line in calls
    ), calls
    # The invented name is the model's, unbounded: it is counted under one label, as an error.
    assert any('tool="(unknown)"' in line and 'error=""' not in line for line in calls), calls
    assert "rm-rf-everything" not in text
    assert 'polyfleet_tool_call_duration_seconds_count{tool="lookup"' in text
