"""The session thread <-> LangChain messages: tool calls and results survive, in order."""

from __future__ import annotations

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from polyfleet.v1 import common_pb2
from runner.graphton.history import to_langchain, to_thread, user_message
from runner.graphton.stream import MessageIds

P = common_pb2


def _turn() -> list[BaseMessage]:
    return [
        AIMessage(
            content="",
            id="lc-1",
            tool_calls=[
                {"id": "call_a", "name": "add", "args": {"a": 2, "b": 3}},
                {"id": "call_w", "name": "weather", "args": {"city": "Paris"}},
            ],
        ),
        ToolMessage(content="5", tool_call_id="call_a", name="add", id="lc-2"),
        ToolMessage(content="Sunny, key=s3cret", tool_call_id="call_w", name="weather"),
        AIMessage(content="5, and sunny", id="lc-3"),
    ]


def _scrub(text: str) -> str:
    return text.replace("s3cret", "[REDACTED]")


def test_a_turn_keeps_tool_calls_and_results_in_order() -> None:
    thread = to_thread(_turn(), MessageIds("aex-1"), "calc", _scrub)

    assert [(m.role, m.id) for m in thread] == [
        (P.MESSAGE_ROLE_ASSISTANT, "aex-1/assistant-1"),
        (P.MESSAGE_ROLE_TOOL, "aex-1/tool/call_a"),
        (P.MESSAGE_ROLE_TOOL, "aex-1/tool/call_w"),
        (P.MESSAGE_ROLE_ASSISTANT, "aex-1/assistant-2"),
    ]
    asked = thread[0]
    assert [(c.id, c.name) for c in asked.tool_calls] == [("call_a", "add"), ("call_w", "weather")]
    assert [m.tool_call_id for m in thread[1:3]] == ["call_a", "call_w"]
    # Content stays plain text for runners that ignore the tool-call fields.
    assert [m.content for m in thread[1:]] == ["5", "Sunny, key=[REDACTED]", "5, and sunny"]


def test_round_trip_preserves_links_order_and_integer_arguments() -> None:
    history = [
        user_message("aex-1", "add 2 and 3"),
        *to_thread(_turn(), MessageIds("aex-1"), "c", _scrub),
    ]

    replayed = to_langchain(history)

    assert [type(m) for m in replayed] == [
        HumanMessage,
        AIMessage,
        ToolMessage,
        ToolMessage,
        AIMessage,
    ]
    asked = replayed[1]
    assert isinstance(asked, AIMessage)
    assert [(c["id"], c["name"], c["args"]) for c in asked.tool_calls] == [
        ("call_a", "add", {"a": 2, "b": 3}),
        ("call_w", "weather", {"city": "Paris"}),
    ]
    assert type(asked.tool_calls[0]["args"]["a"]) is int
    results = [m for m in replayed if isinstance(m, ToolMessage)]
    assert [(m.tool_call_id, m.name, m.content) for m in results] == [
        ("call_a", "add", "5"),
        ("call_w", "weather", "Sunny, key=[REDACTED]"),
    ]
    assert replayed[-1].content == "5, and sunny"
    # And back again: the same thread.
    again = to_thread(replayed[1:], MessageIds("aex-1"), "c", _scrub)
    assert [(m.role, m.content, m.tool_call_id) for m in again] == [
        (m.role, m.content, m.tool_call_id) for m in history[1:]
    ]
    assert [list(m.tool_calls) for m in again] == [list(m.tool_calls) for m in history[1:]]


def test_unlinked_tool_messages_and_unanswered_calls_are_dropped() -> None:
    history = [
        P.Message(id="u", role=P.MESSAGE_ROLE_USER, content="hi"),
        # A thread written before tool calls were kept: no link, so not replayable.
        P.Message(id="t0", role=P.MESSAGE_ROLE_TOOL, content="old result", name="add"),
        P.Message(
            id="a1",
            role=P.MESSAGE_ROLE_ASSISTANT,
            tool_calls=[P.MessageToolCall(id="lost", name="add")],
        ),
        P.Message(
            id="a2",
            role=P.MESSAGE_ROLE_ASSISTANT,
            content="thinking",
            tool_calls=[P.MessageToolCall(id="kept", name="add")],
        ),
        P.Message(id="t1", role=P.MESSAGE_ROLE_TOOL, content="4", tool_call_id="kept"),
        P.Message(id="s", role=P.MESSAGE_ROLE_SYSTEM, content="instructions"),
    ]

    replayed = to_langchain(history)

    assert [m.id for m in replayed] == ["u", "a2", "t1"]
    assert [c["id"] for c in replayed[1].tool_calls] == ["kept"]  # type: ignore[attr-defined]


def test_plain_threads_replay_as_before() -> None:
    history = [
        P.Message(id="u", role=P.MESSAGE_ROLE_USER, content="hi"),
        P.Message(id="a", role=P.MESSAGE_ROLE_ASSISTANT, content="hello"),
    ]

    replayed = to_langchain(history)

    assert [(type(m), m.content) for m in replayed] == [(HumanMessage, "hi"), (AIMessage, "hello")]
    assert replayed[1].tool_calls == []  # type: ignore[attr-defined]
