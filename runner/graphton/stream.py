"""Running a graph and reporting what it streams: token deltas and completed messages.

Works for the built-in agent loop and for a bring-your-own graph alike, through
LangGraph's own stream modes: ``messages`` (chat model tokens, and it makes the chat
models inside stream), ``updates`` (what each node added) and ``values`` (the state).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig

from polyfleet.v1 import common_pb2
from runner.progress import ProgressReporter


class MessageIds:
    """Status message IDs for LangChain messages, readable and unique per execution.

    A message's streamed chunks and its completed form share a LangChain ID, so both
    map to the same status ID: the watcher's deltas and the final message line up.
    """

    def __init__(self, execution_id: str) -> None:
        self._execution_id = execution_id
        self._assistant: dict[str, str] = {}

    def assistant(self, message: BaseMessage) -> str:
        """The status ID of an assistant message (or of its chunks)."""
        key = message.id or f"anonymous-{len(self._assistant) + 1}"
        if key not in self._assistant:
            self._assistant[key] = f"{self._execution_id}/assistant-{len(self._assistant) + 1}"
        return self._assistant[key]

    def tool(self, message: ToolMessage) -> str:
        """The status ID of a tool result: one per tool call."""
        return f"{self._execution_id}/tool/{message.tool_call_id}"


def _messages_in(update: Any) -> Iterator[BaseMessage]:
    # An "updates" item is {node: partial state}; a partial state may hold messages
    # under any key, as one message or a list.
    if not isinstance(update, dict):
        return
    for partial in update.values():
        values = partial.values() if isinstance(partial, dict) else [partial]
        for value in values:
            if isinstance(value, BaseMessage):
                yield value
            elif isinstance(value, list | tuple):
                yield from (v for v in value if isinstance(v, BaseMessage))


def to_status_message(
    message: BaseMessage, ids: MessageIds, agent_name: str
) -> common_pb2.Message | None:
    """The status form of a completed assistant or tool message; None for others."""
    if isinstance(message, AIMessage):
        text = message.text
        if not text:
            return None  # a pure tool-calling step: the tool calls report it
        status = common_pb2.Message(
            id=ids.assistant(message),
            role=common_pb2.MESSAGE_ROLE_ASSISTANT,
            content=text,
            name=agent_name,
        )
    elif isinstance(message, ToolMessage):
        status = common_pb2.Message(
            id=ids.tool(message),
            role=common_pb2.MESSAGE_ROLE_TOOL,
            content=message.text,
            name=message.name or "",
        )
    else:
        return None
    status.create_time.GetCurrentTime()
    return status


async def stream_graph(
    graph: Runnable[Any, Any],
    inputs: dict[str, Any],
    config: RunnableConfig,
    progress: ProgressReporter,
    ids: MessageIds,
    agent_name: str,
) -> list[BaseMessage]:
    """Run ``graph`` to the end, reporting deltas and completed messages.

    Returns:
        The ``messages`` of the graph's final state.

    """
    final: list[BaseMessage] = list(inputs.get("messages", []))
    async for mode, payload in graph.astream(
        inputs, config, stream_mode=["messages", "updates", "values"]
    ):
        if mode == "messages":
            chunk = payload[0]
            if isinstance(chunk, AIMessageChunk) and chunk.text:
                progress.delta(ids.assistant(chunk), chunk.text)
        elif mode == "updates":
            for message in _messages_in(payload):
                status = to_status_message(message, ids, agent_name)
                if status is not None:
                    progress.send(common_pb2.ExecutionUpdate(messages=[status]))
        elif mode == "values" and isinstance(payload, dict):
            final = list(payload.get("messages", final))
    return final
