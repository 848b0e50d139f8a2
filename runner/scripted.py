"""The `scripted` model provider: offline and deterministic, for demos and tests.

It answers from rules in the agent definition and calls no network. Token counts
it reports are word counts, clearly not a real tokenizer's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from polyfleet.v1 import agent_pb2

DEFAULT_CHUNK_WORDS = 3


class ScriptedModelError(Exception):
    """A scripted rule told the model to fail."""


@dataclass(frozen=True)
class ScriptedReply:
    """What the scripted model answers to one user message."""

    text: str
    chunks: list[str]
    chunk_delay: float
    input_tokens: int
    output_tokens: int


def scripted_reply(
    model: agent_pb2.ScriptedModel, message: str, history_words: int = 0
) -> ScriptedReply:
    """Answer ``message`` by the first matching rule, else the default reply.

    Args:
        model: The agent's scripted configuration.
        message: The user message.
        history_words: Words of earlier thread messages, counted as input tokens.

    Raises:
        ScriptedModelError: The matching rule carries an ``error``.

    """
    text = model.default_reply
    for rule in model.rules:
        if re.search(rule.pattern, message):
            if rule.error:
                raise ScriptedModelError(rule.error)
            text = rule.reply
            break
    text = text.replace("{message}", message)
    words = text.split(" ")
    size = model.chunk_words or DEFAULT_CHUNK_WORDS
    chunks = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    # Keep the separating spaces so the concatenated deltas equal the text.
    chunks = [chunk + (" " if i < len(chunks) - 1 else "") for i, chunk in enumerate(chunks)]
    return ScriptedReply(
        text=text,
        chunks=chunks,
        chunk_delay=model.chunk_delay_ms / 1000.0,
        input_tokens=len(message.split()) + history_words,
        output_tokens=len(text.split()),
    )
