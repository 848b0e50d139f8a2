"""LangChain callbacks that report tool calls and model usage as they happen.

Callbacks rather than graph events, because they fire wherever a tool or chat model
runs: in the built-in agent loop, in a sub-agent, and inside a bring-your-own graph.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from google.protobuf.struct_pb2 import Struct
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from polyfleet.v1 import agent_pb2, common_pb2
from runner.progress import ProgressReporter

DEFAULT_CURRENCY = "USD"


def priced_usage(
    input_tokens: int, output_tokens: int, pricing: agent_pb2.ModelPricing
) -> common_pb2.Usage:
    """The usage of one model call, with its cost when the model has prices."""
    usage = common_pb2.Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
        model_calls=1,
    )
    if pricing.input_per_million_tokens or pricing.output_per_million_tokens:
        usage.cost = (
            input_tokens * pricing.input_per_million_tokens
            + output_tokens * pricing.output_per_million_tokens
        ) / 1_000_000
        usage.currency = pricing.currency or DEFAULT_CURRENCY
    return usage


def _tokens(response: LLMResult) -> tuple[int, int]:
    for generations in response.generations:
        for generation in generations:
            if isinstance(generation, ChatGeneration):
                usage = getattr(generation.message, "usage_metadata", None)
                if usage:
                    return int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    # Providers that report usage only in llm_output (OpenAI-style names).
    token_usage = (response.llm_output or {}).get("token_usage") or {}
    return int(token_usage.get("prompt_tokens", 0)), int(token_usage.get("completion_tokens", 0))


def tool_output_text(output: Any) -> str:
    """A tool's result as text for the status."""
    if isinstance(output, BaseMessage):
        return output.text
    if isinstance(output, str):
        return output
    try:
        return json.dumps(output, default=str)
    except (TypeError, ValueError):
        return str(output)


def _arguments(inputs: dict[str, Any] | None, input_str: str) -> Struct:
    arguments = Struct()
    try:
        if inputs is not None:
            arguments.update(json.loads(json.dumps(inputs, default=str)))
        else:
            parsed = json.loads(input_str)
            arguments.update(parsed if isinstance(parsed, dict) else {"input": parsed})
    except (TypeError, ValueError):
        arguments.update({"input": input_str})
    return arguments


def _now_call(call: common_pb2.ToolCall) -> common_pb2.ToolCall:
    call.end_time.GetCurrentTime()
    return call


class ProgressCallbacks(AsyncCallbackHandler):
    """Reports every tool call (RUNNING, then SUCCEEDED/FAILED) and every model call's usage.

    Args:
        progress: Where reports go.
        pricing: Prices of the model whose calls this handler sees.

    """

    # Its handlers only queue reports, so LangChain may await them in place instead of
    # wrapping each event in a task of its own.
    run_inline = True

    def __init__(self, progress: ProgressReporter, pricing: agent_pb2.ModelPricing) -> None:
        self._progress = progress
        self._pricing = pricing
        self._calls: dict[UUID, common_pb2.ToolCall] = {}

    # The events it does not handle, skipped instead of delivered to a no-op: every node
    # and edge of a graph is a chain run (ignore_chain), and a chat model's start would be
    # turned into an LLM start, formatting the whole conversation, for want of a handler
    # (ignore_chat_model; its end, on_llm_end, still arrives). LangChain reads these flags
    # as attributes, which its base class defines as properties returning False.
    ignore_chain = True
    ignore_chat_model = True
    ignore_retriever = True
    ignore_retry = True
    ignore_custom_event = True

    def _send(self, update: common_pb2.ExecutionUpdate) -> None:
        # A failed sender surfaces in the agent loop; raising here would only make
        # LangChain log a warning per callback.
        if not self._progress.failed:
            self._progress.send(update)

    async def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Report the usage of one model call."""
        input_tokens, output_tokens = _tokens(response)
        usage = priced_usage(input_tokens, output_tokens, self._pricing)
        self._send(common_pb2.ExecutionUpdate(usage=usage))

    async def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Report a tool call as RUNNING."""
        call = common_pb2.ToolCall(
            id=str(kwargs.get("tool_call_id") or run_id),
            name=str(serialized.get("name") or kwargs.get("name") or "tool"),
            arguments=_arguments(inputs, input_str),
            status=common_pb2.TOOL_CALL_STATUS_RUNNING,
        )
        call.start_time.GetCurrentTime()
        self._calls[run_id] = call
        self._send(common_pb2.ExecutionUpdate(tool_calls=[call]))

    async def on_tool_end(
        self,
        output: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Report a tool call's result; a handled tool error is a FAILED call."""
        call = self._calls.pop(run_id, None)
        if call is None:
            return
        text = tool_output_text(output)
        if isinstance(output, ToolMessage) and output.status == "error":
            call.status = common_pb2.TOOL_CALL_STATUS_FAILED
            call.error = text
        else:
            call.status = common_pb2.TOOL_CALL_STATUS_SUCCEEDED
            call.result = text
        self._send(common_pb2.ExecutionUpdate(tool_calls=[_now_call(call)]))

    async def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Report a tool call that raised as FAILED."""
        call = self._calls.pop(run_id, None)
        if call is None:
            return
        call.status = common_pb2.TOOL_CALL_STATUS_FAILED
        call.error = str(error) or type(error).__name__
        self._send(common_pb2.ExecutionUpdate(tool_calls=[_now_call(call)]))
