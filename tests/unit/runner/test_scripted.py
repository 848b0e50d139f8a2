"""The offline scripted model: rules, tool calls, streaming and usage."""

from __future__ import annotations

import time

import pytest
from google.protobuf.struct_pb2 import Struct
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from polyfleet.v1 import agent_pb2
from runner.graphton.scripted import ScriptedChatModel, ScriptedModelError, chunk_text, plan_turn


def _script(**overrides: int) -> agent_pb2.ScriptedModel:
    arguments = Struct()
    arguments.update({"city": "Paris"})
    return agent_pb2.ScriptedModel(
        rules=[
            agent_pb2.ScriptedRule(pattern="(?i)weather", reply="It is sunny in {message}"),
            agent_pb2.ScriptedRule(pattern="boom", error="scripted failure"),
            agent_pb2.ScriptedRule(
                pattern="forecast",
                reply="Forecast: {tool_result}",
                tool_call=agent_pb2.ScriptedToolCall(name="lookup", arguments=arguments),
            ),
        ],
        default_reply="Echo: {message}",
        chunk_words=overrides.get("chunk_words", 2),
        chunk_delay_ms=overrides.get("chunk_delay_ms", 0),
    )


def test_first_matching_rule_answers_and_chunks_rejoin_to_the_text() -> None:
    turn = plan_turn(_script(), [HumanMessage("Weather today?")])
    assert turn.text == "It is sunny in Weather today?"
    assert "".join(turn.chunks) == turn.text
    assert turn.chunks[0] == "It is "
    assert (turn.input_tokens, turn.output_tokens) == (2, 6)
    assert turn.tool_call is None


def test_default_reply_counts_history_but_not_instructions_as_input() -> None:
    messages = [
        SystemMessage("You are a test agent."),
        HumanMessage("one two"),
        AIMessage("three four five"),
        HumanMessage("hi"),
    ]
    turn = plan_turn(_script(), messages)
    assert turn.text == "Echo: hi"
    assert turn.input_tokens == 6


def test_error_rule_raises_a_provider_error() -> None:
    with pytest.raises(ScriptedModelError, match="scripted failure") as failure:
        plan_turn(_script(), [HumanMessage("boom now")])
    assert failure.value.error_type == "ModelProviderError"


def test_tool_rule_calls_the_tool_first_then_answers_with_its_result() -> None:
    first = plan_turn(_script(), [HumanMessage("forecast please")])
    assert first.tool_call is not None
    assert (first.tool_call.name, first.tool_call.arguments) == ("lookup", {"city": "Paris"})
    assert first.text == ""
    result = ToolMessage(content="rain", tool_call_id=first.tool_call.id, name="lookup")
    second = plan_turn(_script(), [HumanMessage("forecast please"), AIMessage(""), result])
    assert second.tool_call is None
    assert second.text == "Forecast: rain"


def test_a_new_user_message_starts_a_new_tool_round() -> None:
    old = ToolMessage(content="old", tool_call_id="c1", name="lookup")
    turn = plan_turn(_script(), [HumanMessage("forecast"), old, HumanMessage("forecast again")])
    assert turn.tool_call is not None


def test_chunk_text_keeps_spaces() -> None:
    assert chunk_text("a b c d e", 2) == ["a b ", "c d ", "e"]
    assert chunk_text("single", 0) == ["single"]


async def test_streams_word_chunks_with_the_delay_and_usage_on_the_last() -> None:
    model = ScriptedChatModel(script=_script(chunk_delay_ms=20))
    started = time.monotonic()
    chunks = [c async for c in model.astream([HumanMessage("what is up")])]
    elapsed = time.monotonic() - started
    texts = [c.text for c in chunks if c.text]
    assert "".join(texts) == "Echo: what is up"
    assert texts == ["Echo: what ", "is up"]
    assert elapsed >= 0.04
    usage = [c.usage_metadata for c in chunks if isinstance(c, AIMessageChunk) and c.usage_metadata]
    assert usage == [{"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}]


async def test_bind_tools_and_invoke_return_a_tool_call() -> None:
    model = ScriptedChatModel(script=_script())
    bound = model.bind_tools([{"name": "lookup", "description": "d", "parameters": {}}])
    message = await bound.ainvoke([HumanMessage("forecast")])
    assert isinstance(message, AIMessage)
    assert [c["name"] for c in message.tool_calls] == ["lookup"]
    assert message.tool_calls[0]["args"] == {"city": "Paris"}
    assert message.usage_metadata is not None


def test_sync_invoke_works_too() -> None:
    message = ScriptedChatModel(script=_script()).invoke([HumanMessage("hey")])
    assert message.text == "Echo: hey"
