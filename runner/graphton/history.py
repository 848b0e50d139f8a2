"""The session thread: orchestrator-held messages <-> LangChain messages.

A thread holds the conversation as the user sees it: each turn's user message and the
agent's final answer. Intermediate tool-calling steps are not replayed: the thread's
``Message`` has no tool-call linkage, and providers reject tool results whose call is
missing; those steps stay visible in each execution's status instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from polyfleet.v1 import common_pb2


def to_langchain(history: Iterable[common_pb2.Message]) -> list[BaseMessage]:
    """The earlier turns of a thread, as the model's conversation.

    User and assistant messages are replayed. System messages (the agent's instructions
    are given afresh each turn) and tool messages (no call linkage, see module doc) are
    left out, which every provider accepts.
    """
    messages: list[BaseMessage] = []
    for message in history:
        if message.role == common_pb2.MESSAGE_ROLE_USER:
            messages.append(HumanMessage(content=message.content, id=message.id or None))
        elif message.role == common_pb2.MESSAGE_ROLE_ASSISTANT:
            messages.append(AIMessage(content=message.content, id=message.id or None))
    return messages


def user_message(execution_id: str, content: str) -> common_pb2.Message:
    """The execution's user message as it is kept in the thread."""
    message = common_pb2.Message(
        id=f"{execution_id}/user", role=common_pb2.MESSAGE_ROLE_USER, content=content
    )
    message.create_time.GetCurrentTime()
    return message
