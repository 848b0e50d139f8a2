"""The built-in agent loop as a LangGraph graph: model -> tools -> model … -> answer.

A small explicit graph instead of a prebuilt agent: the model call goes through the
retry policy, tool failures go back to the model as error results (so it can recover),
and failures retrying cannot fix (a provider 401, a missing secret) end the execution.

The graph is compiled once per process and shared by every execution: compiling it
took over a third of the runner CPU of a one-step run. What differs between runs
(the model call, the tools, the instructions) travels in the run's ``configurable``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict, cast

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, SystemMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from opentelemetry.trace import StatusCode

from polyfleet.telemetry import tracing
from polyfleet.telemetry.metrics import TOOL_CALL_DURATION, TOOL_CALLS, Timer
from runner.errors import ActivityFailedError
from runner.graphton.retry import ModelCall

MODEL_NODE = "model"
TOOLS_NODE = "tools"
# Key of the run's _Loop in the run config's "configurable".
_LOOP = "polyfleet_agent_loop"


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
    tools: Mapping[str, BaseTool], call: dict[str, Any], config: RunnableConfig
) -> BaseMessage:
    name = str(call["name"])
    tool = tools.get(name) or _unknown_tool(name, sorted(tools))
    # The tool label only for tools the agent has: a model's invented names are unbounded.
    label = name if name in tools else "(unknown)"
    timer, error = Timer(), ""
    with tracing.span("polyfleet.tool_call", {"polyfleet.tool": name}) as span:
        try:
            result = await tool.ainvoke({**call, "type": "tool_call"}, config)
            if isinstance(result, ToolMessage) and result.status == "error":
                error = "ToolError"  # a tool that reports its failure instead of raising
        except ActivityFailedError as err:
            error = type(err).__name__
            raise  # e.g. a sub-agent's provider rejected its key: not the model's to fix
        except Exception as err:  # noqa: BLE001 - the model sees the error and may recover
            error = type(err).__name__
            span.set_status(StatusCode.ERROR, type(err).__name__)
            return ToolMessage(
                content=f"Error: {err}", tool_call_id=str(call["id"]), name=name, status="error"
            )
        finally:
            TOOL_CALLS.add(1, tool=label, error=error)
            TOOL_CALL_DURATION.record(timer.seconds(), tool=label)
    if isinstance(result, ToolMessage):
        return result
    return ToolMessage(content=str(result), tool_call_id=str(call["id"]), name=name)


@dataclass(frozen=True)
class _Loop:
    """What one agent's runs of the shared graph use."""

    call_model: ModelCall
    tools: Mapping[str, BaseTool]
    system: Sequence[SystemMessage]


def _loop(config: RunnableConfig) -> _Loop:
    return cast(_Loop, config.get("configurable", {})[_LOOP])


async def _model_node(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
    loop = _loop(config)
    response = await loop.call_model([*loop.system, *state["messages"]], config)
    return {"messages": [response]}


async def _tools_node(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
    tools = _loop(config).tools
    last = state["messages"][-1]
    calls = last.tool_calls if isinstance(last, AIMessage) else []
    tasks = [asyncio.ensure_future(_run_tool(tools, dict(c), config)) for c in calls]
    try:
        results = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:  # gather leaves the siblings of a failed call running
            task.cancel()
        raise
    return {"messages": list(results)}


async def _route(state: AgentState) -> str:
    # Async although it awaits nothing: LangGraph runs a sync function on a thread pool.
    last = state["messages"][-1]
    return TOOLS_NODE if isinstance(last, AIMessage) and last.tool_calls else END


@functools.cache
def _compiled() -> CompiledStateGraph[AgentState, None, AgentState, AgentState]:
    graph = StateGraph(AgentState)
    graph.add_node(MODEL_NODE, _model_node)
    graph.add_node(TOOLS_NODE, _tools_node)
    graph.add_edge(START, MODEL_NODE)
    graph.add_conditional_edges(MODEL_NODE, _route, [TOOLS_NODE, END])
    graph.add_edge(TOOLS_NODE, MODEL_NODE)
    return graph.compile()


def build_agent_graph(
    call_model: ModelCall, tools: Sequence[BaseTool], instructions: str
) -> Runnable[Any, Any]:
    """The agent loop of one agent: the shared compiled graph bound to its parts.

    Args:
        call_model: The model with the tools bound, wrapped in the retry policy.
        tools: Tools the model may call, by their unique names.
        instructions: The system prompt, prepended to every model call.

    """
    loop = _Loop(
        call_model=call_model,
        tools={tool.name: tool for tool in tools},
        system=[SystemMessage(content=instructions)] if instructions else [],
    )
    return _compiled().with_config(configurable={_LOOP: loop})
