"""The retry policy for model calls inside one execution.

Transient provider failures (429 without a quota problem, 5xx, 408, timeouts,
dropped connections) are retried here with exponential backoff; everything else fails
the execution at once. The provider SDKs' own retries are switched off (see
``models.py``) so the number of attempts is exactly ``ModelRetry.max_attempts``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig

from polyfleet.telemetry import tracing
from polyfleet.telemetry.metrics import MODEL_CALL_DURATION, MODEL_CALLS, MODEL_TOKENS, Timer
from polyfleet.v1 import agent_pb2
from runner.graphton.errors import ModelError
from runner.graphton.provider_errors import classify_model_error

logger = logging.getLogger(__name__)
Log = logging.Logger | logging.LoggerAdapter[logging.Logger]
DEFAULT_ATTEMPTS = 3
DEFAULT_CALL_TIMEOUT = timedelta(seconds=120)


@dataclass(frozen=True)
class RetryPolicy:
    """How one model call is attempted.

    Attributes:
        max_attempts: Attempts per call including the first.
        call_timeout: Seconds one attempt may take, streaming included.
        initial_backoff: Seconds before the second attempt; doubles per attempt.
        max_backoff: Upper bound of one wait, also for a provider's ``Retry-After``.

    """

    max_attempts: int = DEFAULT_ATTEMPTS
    call_timeout: float = DEFAULT_CALL_TIMEOUT.total_seconds()
    initial_backoff: float = 1.0
    max_backoff: float = 30.0

    @classmethod
    def resolve(
        cls, retry: agent_pb2.ModelRetry, *, initial_backoff: float, max_backoff: float
    ) -> RetryPolicy:
        """The policy of a ``ModelRetry``, with the defaults for unset fields."""
        timeout = retry.timeout.ToTimedelta() if retry.HasField("timeout") else None
        return cls(
            max_attempts=retry.max_attempts if retry.max_attempts > 0 else DEFAULT_ATTEMPTS,
            call_timeout=(timeout or DEFAULT_CALL_TIMEOUT).total_seconds(),
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
        )

    def backoff(self, attempt: int, error: ModelError) -> float:
        """Seconds to wait after failed ``attempt`` (1-based)."""
        if error.retry_after is not None:
            return min(error.retry_after, self.max_backoff)
        return float(min(self.initial_backoff * 2 ** (attempt - 1), self.max_backoff))


ModelCall = Callable[[Sequence[BaseMessage], RunnableConfig], Awaitable[BaseMessage]]


def retrying_model_call(
    model: Runnable[LanguageModelInput, Any],
    policy: RetryPolicy,
    where: str,
    scrub: Callable[[str], str],
    *,
    log: Log = logger,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    labels: tuple[str, str] = ("", ""),
) -> ModelCall:
    """Wrap ``model.ainvoke`` in the retry policy and error classification.

    Args:
        model: The chat model, with tools bound.
        policy: Attempts, per-call timeout and backoff.
        where: The model, for error messages.
        scrub: Removes secret values from error messages.
        log: Where retries are logged (with the execution's IDs).
        sleep: Injectable for tests.
        labels: Provider and model, the labels of the model-call metrics.

    Returns:
        A coroutine function that returns the model's message or raises
        :class:`ModelError` (cancellation propagates untouched).

    """
    provider, model_name = labels

    async def call(messages: Sequence[BaseMessage], config: RunnableConfig) -> BaseMessage:
        timer = Timer()
        error_type = ""
        try:
            result = await attempts(messages, config)
        except BaseException as exc:
            error_type = (exc.error_type if isinstance(exc, ModelError) else None) or type(
                exc
            ).__name__
            raise
        finally:
            MODEL_CALLS.add(1, provider=provider, model=model_name, error=error_type)
            MODEL_CALL_DURATION.record(timer.seconds(), provider=provider, model=model_name)
        usage = getattr(result, "usage_metadata", None) or {}
        for direction in ("input", "output"):
            tokens = usage.get(f"{direction}_tokens") or 0
            if tokens:
                MODEL_TOKENS.add(tokens, provider=provider, model=model_name, direction=direction)
        return result

    async def attempts(messages: Sequence[BaseMessage], config: RunnableConfig) -> BaseMessage:
        # One span per model call, its retries included (docs/observability.md, "Traces").
        attributes = {"polyfleet.model": where, "gen_ai.system": provider}
        with tracing.span("polyfleet.model_call", attributes) as span:
            attempt = 1
            while True:
                span.set_attribute("polyfleet.attempts", attempt)
                try:
                    async with asyncio.timeout(policy.call_timeout):
                        result = await model.ainvoke(list(messages), config)
                    if not isinstance(result, BaseMessage):
                        raise TypeError(f"the model returned {type(result).__name__}")
                    return result
                except Exception as err:  # noqa: BLE001 - classified, never swallowed
                    error = classify_model_error(err, where, scrub)
                if not error.transient or attempt >= policy.max_attempts:
                    if error.transient:
                        error.message = f"{error.message} (after {attempt} attempts)"
                        error.args = (error.message,)
                    raise error
                delay = policy.backoff(attempt, error)
                log.warning(
                    "model call attempt %d/%d failed (%s), retrying in %.1f s: %s",
                    attempt,
                    policy.max_attempts,
                    error.error_type,
                    delay,
                    error.message,
                )
                await sleep(delay)
                attempt += 1

    return call
