"""The built-in agent loop: one compiled graph shared by agents with different parts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool

from runner.graphton.agent import build_agent_graph
from runner.graphton.retry import ModelCall


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
