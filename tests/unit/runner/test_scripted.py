"""The offline scripted model."""

from __future__ import annotations

import pytest

from polyfleet.v1 import agent_pb2
from runner.scripted import ScriptedModelError, scripted_reply


def _model() -> agent_pb2.ScriptedModel:
    return agent_pb2.ScriptedModel(
        rules=[
            agent_pb2.ScriptedRule(pattern="(?i)weather", reply="It is sunny in {message}"),
            agent_pb2.ScriptedRule(pattern="boom", error="scripted failure"),
        ],
        default_reply="Echo: {message}",
        chunk_words=2,
        chunk_delay_ms=50,
    )


def test_first_matching_rule_answers_and_chunks_rejoin_to_the_text() -> None:
    reply = scripted_reply(_model(), "Weather today?")
    assert reply.text == "It is sunny in Weather today?"
    assert "".join(reply.chunks) == reply.text
    assert reply.chunks[0] == "It is "
    assert reply.chunk_delay == 0.05
    assert (reply.input_tokens, reply.output_tokens) == (2, 6)


def test_default_reply_when_nothing_matches() -> None:
    assert scripted_reply(_model(), "hi", history_words=7).text == "Echo: hi"
    assert scripted_reply(_model(), "hi", history_words=7).input_tokens == 8


def test_error_rule_raises() -> None:
    with pytest.raises(ScriptedModelError, match="scripted failure"):
        scripted_reply(_model(), "boom now")
