"""Sub-agents: helper agents the parent model calls as tools.

Each call runs the sub-agent's own agent loop on the task the parent gave it, and is
reported as a ``SubAgentExecution`` (RUNNING, then COMPLETED or FAILED) as it happens.
A sub-agent runs outside the parent graph's run context: its tokens and intermediate
messages are its own, not the parent's streamed answer, and its model calls are
priced with its own model's prices.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Annotated, Any

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tools import BaseTool, InjectedToolCallId, StructuredTool
from langgraph.errors import GraphRecursionError

from polyfleet.telemetry import tracing
from polyfleet.v1 import agent_pb2, common_pb2
from runner.errors import ActivityFailedError
from runner.progress import ProgressReporter


def _final_text(state: dict[str, Any]) -> str:
    for message in reversed(state.get("messages", [])):
        if isinstance(message, AIMessage):
            return message.text
    return ""


def _error_of(err: BaseException) -> common_pb2.ExecutionError:
    if isinstance(err, ActivityFailedError):
        return common_pb2.ExecutionError(type=err.error_type, message=err.message)
    if isinstance(err, GraphRecursionError):
        return common_pb2.ExecutionError(type="MaxStepsExceeded", message=str(err))
    return common_pb2.ExecutionError(type="SubAgentError", message=str(err) or type(err).__name__)


def sub_agent_tool(
    sub: agent_pb2.SubAgent,
    graph: Runnable[Any, Any],
    progress: ProgressReporter,
    config: Callable[[], RunnableConfig],
) -> BaseTool:
    """The tool through which the parent calls ``sub``.

    Args:
        sub: The sub-agent's definition.
        graph: Its compiled agent loop.
        progress: Where its runs are reported.
        config: Fresh run configuration for each call (callbacks, recursion limit).

    """

    async def run(input: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> str:
        # Its model and tool calls are this span's children (docs/observability.md).
        with tracing.span("polyfleet.sub_agent", {"polyfleet.sub_agent": sub.name}):
            return await _run(input, tool_call_id)

    async def _run(input: str, tool_call_id: str) -> str:
        record = common_pb2.SubAgentExecution(
            id=f"{progress.execution_id}/sub-agent/{tool_call_id}",
            name=sub.name,
            input=input,
            phase=common_pb2.EXECUTION_PHASE_RUNNING,
        )
        record.start_time.GetCurrentTime()
        progress.send(common_pb2.ExecutionUpdate(sub_agent_executions=[record]))
        # A copy of the current context without the parent's run config, so the
        # sub-agent is its own LangChain/LangGraph run (see module doc).
        context = contextvars.copy_context()
        context.run(var_child_runnable_config.set, None)
        try:
            state = await asyncio.create_task(
                graph.ainvoke({"messages": [HumanMessage(content=input)]}, config()),
                context=context,
            )
        except Exception as err:
            record.phase = common_pb2.EXECUTION_PHASE_FAILED
            record.error.CopyFrom(_error_of(err))
            record.end_time.GetCurrentTime()
            progress.send(common_pb2.ExecutionUpdate(sub_agent_executions=[record]))
            raise
        record.output = _final_text(state)
        record.phase = common_pb2.EXECUTION_PHASE_COMPLETED
        record.end_time.GetCurrentTime()
        progress.send(common_pb2.ExecutionUpdate(sub_agent_executions=[record]))
        return record.output

    return StructuredTool.from_function(
        coroutine=run,
        name=sub.name,
        description=sub.description or f"Ask the {sub.name} sub-agent to do a task.",
    )
