"""The ``scripted`` model provider: offline and deterministic, for demos and tests.

It is a real LangChain chat model, so it runs through the same graph, streaming,
tool-calling and usage paths as a hosted model, but it answers from rules in the agent
definition and calls no network. Token counts are word counts, clearly not a real
tokenizer's.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict

from polyfleet.structs import struct_to_dict
from polyfleet.v1 import agent_pb2
from runner.graphton.errors import MODEL_PROVIDER_ERROR, ModelError

DEFAULT_CHUNK_WORDS = 3


class ScriptedModelError(ModelError):
    """A scripted rule told the model to fail."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_type=MODEL_PROVIDER_ERROR)


@dataclass(frozen=True)
class ScriptedToolCall:
    """A tool call the scripted model makes before it answers."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ScriptedTurn:
    """What the scripted model says next: a tool call or a text reply."""

    text: str
    chunks: list[str]
    tool_call: ScriptedToolCall | None
    input_tokens: int
    output_tokens: int


def _words(text: str) -> int:
    return len(text.split())


def _current_turn(messages: Sequence[BaseMessage]) -> tuple[str, list[ToolMessage]]:
    """The last user message and the tool results that followed it."""
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            later = messages[index + 1 :]
            return messages[index].text, [m for m in later if isinstance(m, ToolMessage)]
    return "", [m for m in messages if isinstance(m, ToolMessage)]


def chunk_text(text: str, words_per_chunk: int) -> list[str]:
    """Split ``text`` into groups of words whose concatenation is ``text`` again."""
    words = text.split(" ")
    size = words_per_chunk or DEFAULT_CHUNK_WORDS
    chunks = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    # Keep the separating spaces so the concatenated deltas equal the text.
    return [chunk + (" " if i < len(chunks) - 1 else "") for i, chunk in enumerate(chunks)]


def plan_turn(script: agent_pb2.ScriptedModel, messages: Sequence[BaseMessage]) -> ScriptedTurn:
    """Decide the model's next turn for a conversation.

    The first rule whose pattern matches the last user message answers, else the
    default reply. A rule with a ``tool_call`` first calls that tool; once the tool's
    result is in the conversation it replies, with ``{tool_result}`` replaced by it.
    ``{message}`` is replaced by the user message.

    Raises:
        ScriptedModelError: The matching rule carries an ``error``.

    """
    message, tool_results = _current_turn(messages)
    input_tokens = sum(_words(m.text) for m in messages if not isinstance(m, SystemMessage))
    text = script.default_reply
    rule = next((r for r in script.rules if re.search(r.pattern, message)), None)
    if rule is not None:
        if rule.error:
            raise ScriptedModelError(rule.error)
        text = rule.reply
        if rule.HasField("tool_call") and not tool_results:
            call = ScriptedToolCall(
                id=f"call_{uuid.uuid4().hex[:20]}",
                name=rule.tool_call.name,
                arguments=struct_to_dict(rule.tool_call.arguments),
            )
            return ScriptedTurn("", [], call, input_tokens, 1)
    result = "\n".join(m.text for m in tool_results)
    text = text.replace("{message}", message).replace("{tool_result}", result)
    return ScriptedTurn(
        text, chunk_text(text, script.chunk_words), None, input_tokens, _words(text)
    )


def _usage(turn: ScriptedTurn) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=turn.input_tokens,
        output_tokens=turn.output_tokens,
        total_tokens=turn.input_tokens + turn.output_tokens,
    )


def _chunks(turn: ScriptedTurn) -> Iterator[AIMessageChunk]:
    if turn.tool_call is not None:
        call = turn.tool_call
        yield AIMessageChunk(
            content="",
            tool_call_chunks=[
                tool_call_chunk(
                    name=call.name, args=json.dumps(call.arguments), id=call.id, index=0
                )
            ],
            usage_metadata=_usage(turn),
        )
        return
    for i, text in enumerate(turn.chunks):
        last = i == len(turn.chunks) - 1
        # Usage rides on the last chunk, as OpenAI's include_usage does.
        yield AIMessageChunk(content=text, usage_metadata=_usage(turn) if last else None)


class ScriptedChatModel(BaseChatModel):
    """A LangChain chat model that answers from an agent's ``ScriptedModel`` rules."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    script: agent_pb2.ScriptedModel
    model_name: str = "scripted"

    @property
    def _llm_type(self) -> str:
        return "polyfleet-scripted"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Accept tools like a hosted model; the rules decide which tool is called."""
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message: AIMessageChunk | None = None
        for chunk in _chunks(plan_turn(self.script, messages)):
            message = chunk if message is None else message + chunk
        assert message is not None
        return ChatResult(generations=[ChatGeneration(message=_finish(message))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Through the async stream, so a non-streaming call takes as long as a streamed
        # one and can be cancelled during it, like a real provider call.
        message: AIMessageChunk | None = None
        async for chunk in self._astream(messages, stop, None, **kwargs):
            assert isinstance(chunk.message, AIMessageChunk)
            message = chunk.message if message is None else message + chunk.message
        assert message is not None
        return ChatResult(generations=[ChatGeneration(message=_finish(message))])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        turn = plan_turn(self.script, messages)
        delay = self.script.chunk_delay_ms / 1000.0
        for chunk in _chunks(turn):
            if delay:
                await asyncio.sleep(delay)
            # BaseChatModel reports each chunk to the callbacks (on_llm_new_token).
            yield ChatGenerationChunk(message=chunk)


def _finish(chunk: AIMessageChunk) -> AIMessage:
    return AIMessage(
        content=chunk.content,
        tool_calls=chunk.tool_calls,
        usage_metadata=chunk.usage_metadata,
        id=chunk.id,
    )
