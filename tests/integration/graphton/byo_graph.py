"""A bring-your-own compiled LangGraph graph, imported by the runner as ``module:graph``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages


def _answer(messages: list[BaseMessage]) -> str:
    return f"graph saw {len(messages)} messages, last: {messages[-1].text}"


class CountingModel(BaseChatModel):
    """Says how many messages it got, streamed word by word."""

    @property
    def _llm_type(self) -> str:
        return "counting"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(_answer(messages)))])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        words = _answer(messages).split(" ")
        for i, word in enumerate(words):
            last = i == len(words) - 1
            usage = UsageMetadata(
                input_tokens=5, output_tokens=len(words), total_tokens=5 + len(words)
            )
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content=word + ("" if last else " "), usage_metadata=usage if last else None
                )
            )


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


_model = CountingModel()


async def _respond(state: State, config: RunnableConfig) -> dict[str, Any]:
    return {"messages": [await _model.ainvoke(state["messages"], config)]}


_builder = StateGraph(State)
_builder.add_node("respond", _respond)
_builder.add_edge(START, "respond")
graph = _builder.compile()
