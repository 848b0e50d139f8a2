"""The built-in agent loop as a LangGraph graph: model -> tools -> model … -> answer.

A small explicit graph instead of a prebuilt agent: the model call goes through the
retry policy, tool failures go back to the model as error results (so it can recover),
and failures retrying cannot fix (a provider 401, a missing secret) end the execution.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph

from runner.graphton.errors import GraphtonError
from runner.graphton.retry import ModelCall

MODEL_NODE = "model"
TOOLS_NODE = "tools"


class AgentState(TypedDict):
    """The graph's state: the conversation, appended to by each node."""

    messages: Annotated[list[AnyMessage], add_messages]


def _unknown_tool(name: str, known: Sequence[str]) -> BaseTool:
    # A stand-in that fails like a tool, so the call is reported and the model told.
    async def fail(**_: Any) -> str:
        offered = ", ".join(known) or "none"
        raise ToolException(f"there is no tool named '{name}' (tools: {offered})")

    return StructuredTool.from_function(
        coroutine=fail, name=name, description="unknown tool", handle_tool_error=True
    )


async def _run_tool(
    tools: dict[str, BaseTool], call: dict[str, Any], config: RunnableConfig
) -> BaseMessage:
    name = str(call["name"])
    tool = tools.get(name) or _unknown_tool(name, sorted(tools))
    try:
        result = await tool.ainvoke({**call, "type": "tool_call"}, config)
    except GraphtonError:
        raise  # e.g. a sub-agent's provider rejected its key: not the model's to fix
    except Exception as err:  # noqa: BLE001 - the model sees the error and may recover
        return ToolMessage(
            content=f"Error: {err}", tool_call_id=str(call["id"]), name=name, status="error"
        )
    if isinstance(result, ToolMessage):
        return result
    return ToolMessage(content=str(result), tool_call_id=str(call["id"]), name=name)


def build_agent_graph(
    call_model: ModelCall, tools: Sequence[BaseTool], instructions: str
) -> CompiledStateGraph[AgentState, None, AgentState, AgentState]:
    """Compile the agent loop.

    Args:
        call_model: The model with the tools bound, wrapped in the retry policy.
        tools: Tools the model may call, by their unique names.
        instructions: The system prompt, prepended to every model call.

    """
    by_name = {tool.name: tool for tool in tools}
    system = [SystemMessage(content=instructions)] if instructions else []

    async def model_node(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        response = await call_model([*system, *state["messages"]], config)
        return {"messages": [response]}

    async def tools_node(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        last = state["messages"][-1]
        calls = last.tool_calls if isinstance(last, AIMessage) else []
        tasks = [asyncio.ensure_future(_run_tool(by_name, dict(c), config)) for c in calls]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # gather leaves the siblings of a failed call running
                task.cancel()
            raise
        return {"messages": list(results)}

    def route(state: AgentState) -> str:
        last = state["messages"][-1]
        return TOOLS_NODE if isinstance(last, AIMessage) and last.tool_calls else END

    graph = StateGraph(AgentState)
    graph.add_node(MODEL_NODE, model_node)
    graph.add_node(TOOLS_NODE, tools_node)
    graph.add_edge(START, MODEL_NODE)
    graph.add_conditional_edges(MODEL_NODE, route, [TOOLS_NODE, END])
    graph.add_edge(TOOLS_NODE, MODEL_NODE)
    return graph.compile()
