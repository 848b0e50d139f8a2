"""The model call retry policy."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda

from polyfleet.v1 import agent_pb2
from runner.graphton.errors import ModelError
from runner.graphton.retry import RetryPolicy, retrying_model_call

_REQUEST = httpx2.Request("POST", "http://127.0.0.1:1/v1/chat/completions")


def _status(cls: type[openai.APIStatusError], status: int, **headers: str) -> Exception:
    body = {"message": f"status {status}"}
    response = httpx2.Response(status, request=_REQUEST, headers=headers, json={"error": body})
    return cls("x", response=response, body=body)


class Script:
    """A fake model that raises or answers from a list, and counts calls."""

    def __init__(self, *outcomes: Exception | str) -> None:
        self._outcomes: Iterator[Exception | str] = iter(outcomes)
        self.calls = 0

    async def __call__(self, _: Any) -> AIMessage:
        self.calls += 1
        outcome = next(self._outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        if outcome == "hang":
            await asyncio.sleep(10)
        return AIMessage(outcome)


async def _run(script: Script, policy: RetryPolicy) -> tuple[AIMessage | ModelError, list[float]]:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    call = retrying_model_call(
        RunnableLambda(script), policy, "fake model", lambda t: t, sleep=sleep
    )
    try:
        result = await call([HumanMessage("hi")], RunnableConfig())
    except ModelError as err:
        return err, sleeps
    assert isinstance(result, AIMessage)
    return result, sleeps


def test_policy_defaults_and_overrides() -> None:
    default = RetryPolicy.resolve(agent_pb2.ModelRetry(), initial_backoff=1, max_backoff=30)
    assert (default.max_attempts, default.call_timeout) == (3, 120.0)
    custom = agent_pb2.ModelRetry(max_attempts=5)
    custom.timeout.FromSeconds(7)
    resolved = RetryPolicy.resolve(custom, initial_backoff=1, max_backoff=30)
    assert (resolved.max_attempts, resolved.call_timeout) == (5, 7.0)


async def test_transient_errors_are_retried_with_exponential_backoff() -> None:
    script = Script(
        _status(openai.InternalServerError, 502), _status(openai.RateLimitError, 429), "done"
    )
    result, sleeps = await _run(script, RetryPolicy(max_attempts=3, initial_backoff=0.5))
    assert isinstance(result, AIMessage) and result.text == "done"
    assert sleeps == [0.5, 1.0]


async def test_retry_after_is_honoured_up_to_the_maximum() -> None:
    script = Script(
        _status(openai.RateLimitError, 429, **{"retry-after": "3"}),
        _status(openai.RateLimitError, 429, **{"retry-after": "99"}),
        "ok",
    )
    _, sleeps = await _run(script, RetryPolicy(max_attempts=3, max_backoff=10))
    assert sleeps == [3.0, 10.0]


async def test_attempts_run_out_with_the_count_in_the_message() -> None:
    script = Script(*[_status(openai.InternalServerError, 500)] * 3)
    error, sleeps = await _run(script, RetryPolicy(max_attempts=3, initial_backoff=0.1))
    assert isinstance(error, ModelError)
    assert error.error_type == "ModelProviderUnavailable"
    assert error.message.endswith("(after 3 attempts)")
    assert script.calls == 3 and len(sleeps) == 2


async def test_permanent_errors_are_not_retried() -> None:
    script = Script(_status(openai.AuthenticationError, 401))
    error, sleeps = await _run(script, RetryPolicy(max_attempts=3))
    assert isinstance(error, ModelError) and error.error_type == "ModelAuthenticationError"
    assert script.calls == 1 and sleeps == []


async def test_a_call_that_exceeds_its_timeout_is_retried_as_unavailable() -> None:
    script = Script("hang", "hang")
    error, _ = await _run(script, RetryPolicy(max_attempts=2, call_timeout=0.05))
    assert isinstance(error, ModelError)
    assert error.error_type == "ModelProviderUnavailable"
    assert "did not answer in time (after 2 attempts)" in error.message


async def test_cancellation_is_not_swallowed() -> None:
    script = Script("hang")
    call = retrying_model_call(RunnableLambda(script), RetryPolicy(), "m", lambda t: t)
    task = asyncio.ensure_future(call([HumanMessage("hi")], RunnableConfig()))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
