"""The session thread: orchestrator-held messages <-> LangChain messages.

A thread holds the whole conversation, in order, as LangGraph's own persistence would:
each turn's user message, every assistant message (with the tool calls it asked for),
every tool result (linked to its call by ``tool_call_id``) and the final answer. A later
turn replays it, so the model can refer back to what its tools returned.

Each message's ``content`` stays plain text, so a runner in another language can read a
thread without knowing the tool-call fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence

from google.protobuf.struct_pb2 import Struct
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.messages.tool import ToolCall

from polyfleet import contract
from polyfleet.structs import struct_to_dict
from polyfleet.v1 import common_pb2
from runner.graphton.stream import MessageIds


def to_langchain(history: Iterable[common_pb2.Message]) -> list[BaseMessage]:
    """The earlier turns of a thread, as the model's conversation.

    User, assistant and tool messages are replayed in order; system messages are left
    out (the agent's instructions are given afresh each turn). Providers reject a tool
    result whose call is missing and a tool call without its result, so those are
    dropped: tool messages of threads written before tool calls were kept (no
    ``tool_call_id``), and the calls of a turn that never got its results.
    """
    messages: list[BaseMessage] = []
    for message in history:
        if message.role == common_pb2.MESSAGE_ROLE_USER:
            messages.append(HumanMessage(content=message.content, id=message.id or None))
        elif message.role == common_pb2.MESSAGE_ROLE_ASSISTANT:
            calls = [
                ToolCall(id=call.id, name=call.name, args=struct_to_dict(call.arguments))
                for call in message.tool_calls
            ]
            messages.append(
                AIMessage(content=message.content, tool_calls=calls, id=message.id or None)
            )
        elif message.role == common_pb2.MESSAGE_ROLE_TOOL and message.tool_call_id:
            messages.append(
                ToolMessage(
                    content=message.content,
                    tool_call_id=message.tool_call_id,
                    name=message.name or None,
                    id=message.id or None,
                )
            )
    return _linked(messages)


def _linked(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    # Keep a tool call only when its result follows, and a result only when its call
    # came before: what every provider accepts.
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    asked: set[str] = set()
    linked: list[BaseMessage] = []
    for message in messages:
        if isinstance(message, AIMessage) and message.tool_calls:
            calls = [call for call in message.tool_calls if call["id"] in answered]
            asked.update(str(call["id"]) for call in calls)
            if calls != message.tool_calls:
                if not calls and not message.content:
                    continue
                message = message.model_copy(update={"tool_calls": calls})
        elif isinstance(message, ToolMessage) and message.tool_call_id not in asked:
            continue
        linked.append(message)
    return linked


def to_thread(
    messages: Iterable[BaseMessage],
    ids: MessageIds,
    agent_name: str,
    scrub: Callable[[str], str],
) -> list[common_pb2.Message]:
    """The messages a run added, as they are kept in the thread.

    Args:
        messages: The run's new messages, in order (after the user message).
        ids: The execution's message IDs, so thread and status name a message alike.
        agent_name: Name recorded on assistant messages.
        scrub: Removes secret values from text.

    Returns:
        Assistant messages with their tool calls and tool messages with their
        ``tool_call_id``; other kinds (e.g. a graph's own system messages) are left out.

    """
    kept: list[common_pb2.Message] = []
    for message in messages:
        if isinstance(message, AIMessage):
            if not message.text and not message.tool_calls:
                continue
            item = common_pb2.Message(
                id=ids.assistant(message),
                role=common_pb2.MESSAGE_ROLE_ASSISTANT,
                content=scrub(message.text),
                name=agent_name,
            )
            for call in message.tool_calls:
                arguments = Struct()
                # Through JSON: a tool's arguments may hold values a Struct cannot.
                arguments.update(json.loads(json.dumps(call["args"], default=str)))
                item.tool_calls.add(id=call["id"] or "", name=call["name"], arguments=arguments)
        elif isinstance(message, ToolMessage):
            item = common_pb2.Message(
                id=ids.tool(message),
                role=common_pb2.MESSAGE_ROLE_TOOL,
                content=scrub(message.text),
                name=message.name or "",
                tool_call_id=message.tool_call_id,
            )
        else:
            continue
        item.create_time.GetCurrentTime()
        kept.append(item)
    return kept


def user_message(execution_id: str, content: str) -> common_pb2.Message:
    """The execution's user message as it is kept in the thread."""
    message = common_pb2.Message(
        id=contract.user_message_id(execution_id),
        role=common_pb2.MESSAGE_ROLE_USER,
        content=content,
    )
    message.create_time.GetCurrentTime()
    return message
