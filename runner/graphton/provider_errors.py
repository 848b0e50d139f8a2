"""Turning model provider exceptions into :class:`ModelError` with a stable type.

Providers' SDKs (openai, anthropic, ollama) raise their own exception classes; they
share the shape this module relies on: an HTTP ``status_code``, a parsed ``body``
carrying the provider's message, and class names such as ``APIConnectionError`` or
``APITimeoutError``. Duck typing keeps the optional SDKs optional.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pydantic

from runner.graphton.errors import (
    MODEL_AUTHENTICATION_ERROR,
    MODEL_PROVIDER_ERROR,
    MODEL_PROVIDER_UNAVAILABLE,
    MODEL_RATE_LIMITED,
    MODEL_RESPONSE_INVALID,
    ModelError,
)

# OpenAI answers 429 both for "slow down" and for "out of credit"; only the first
# goes away by waiting.
_PERMANENT_429_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
_MAX_PROVIDER_MESSAGE = 500


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status_code(err: BaseException) -> int | None:
    status = getattr(err, "status_code", None)
    if isinstance(status, int) and status > 0:
        return status
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) and status > 0 else None


def _body_message(body: Any) -> str | None:
    # OpenAI: {"message": ..., "code": ...}; Anthropic: {"error": {"message": ...}};
    # Ollama: a string.
    if isinstance(body, str):
        return body or None
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            return str(body["message"])
        if "error" in body:
            return _body_message(body["error"])
    return None


def _body_code(body: Any) -> str | None:
    if isinstance(body, dict):
        code = body.get("code") or body.get("type")
        if isinstance(code, str):
            return code
        if "error" in body:
            return _body_code(body["error"])
    return None


def provider_message(err: BaseException) -> str:
    """The provider's own words about ``err``, without the SDK's wrapping."""
    message = _body_message(getattr(err, "body", None)) or _body_message(
        getattr(err, "error", None)
    )
    text = message or str(err) or type(err).__name__
    return text if len(text) <= _MAX_PROVIDER_MESSAGE else text[:_MAX_PROVIDER_MESSAGE] + "…"


def _retry_after(err: BaseException) -> float | None:
    headers = getattr(getattr(err, "response", None), "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("retry-after")
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP date; the exponential backoff applies instead


def _is_timeout(err: BaseException) -> bool:
    return isinstance(err, TimeoutError) or "timeout" in type(err).__name__.lower()


def _is_connection_error(err: BaseException) -> bool:
    name = type(err).__name__
    return isinstance(err, ConnectionError) or name in {
        "APIConnectionError",
        "ConnectError",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
        "LocalProtocolError",
        "NetworkError",
    }


def _is_malformed(err: BaseException) -> bool:
    return isinstance(
        err, json.JSONDecodeError | pydantic.ValidationError | KeyError | IndexError
    ) or type(err).__name__ in {"APIResponseValidationError", "OutputParserException"}


def _from_status(
    status: int, err: BaseException, where: str, scrub: Callable[[str], str]
) -> ModelError:
    said = scrub(provider_message(err))
    message = f"{where} answered HTTP {status}: {said}"
    if status in (401, 403):
        return ModelError(message, error_type=MODEL_AUTHENTICATION_ERROR, status_code=status)
    if status == 429:
        body = getattr(err, "body", None)
        transient = _body_code(body) not in _PERMANENT_429_CODES
        return ModelError(
            message,
            error_type=MODEL_RATE_LIMITED,
            transient=transient,
            status_code=status,
            retry_after=_retry_after(err),
        )
    if status == 408 or status >= 500:
        return ModelError(
            message,
            error_type=MODEL_PROVIDER_UNAVAILABLE,
            transient=True,
            status_code=status,
            retry_after=_retry_after(err),
        )
    return ModelError(message, error_type=MODEL_PROVIDER_ERROR, status_code=status)


def classify_model_error(err: BaseException, where: str, scrub: Callable[[str], str]) -> ModelError:
    """Classify an exception raised by a model call.

    Args:
        err: What the chat model raised.
        where: Which model, for the message, e.g. ``openai model 'gpt-4o' at https://…``.
        scrub: Removes secret values from text; applied to every provider message.

    Returns:
        A :class:`ModelError` whose ``error_type`` is one of ``ModelAuthenticationError``
        (401/403), ``ModelRateLimited`` (429), ``ModelProviderUnavailable`` (5xx, 408,
        timeouts, connection failures), ``ModelResponseInvalid`` (malformed responses)
        or ``ModelProviderError`` (anything else), and ``transient`` set when another
        attempt may succeed.

    """
    for cause in _chain(err):
        if isinstance(cause, ModelError):
            return cause
        status = _status_code(cause)
        if status is not None and type(cause).__name__ != "APIResponseValidationError":
            return _from_status(status, cause, where, scrub)
    for cause in _chain(err):
        if _is_timeout(cause):
            return ModelError(
                f"{where} did not answer in time",
                error_type=MODEL_PROVIDER_UNAVAILABLE,
                transient=True,
            )
        if _is_connection_error(cause):
            return ModelError(
                f"{where} could not be reached: {scrub(provider_message(cause))}",
                error_type=MODEL_PROVIDER_UNAVAILABLE,
                transient=True,
            )
        if _is_malformed(cause):
            return ModelError(
                f"{where} sent a malformed response: "
                f"{type(cause).__name__}: {scrub(provider_message(cause))}",
                error_type=MODEL_RESPONSE_INVALID,
            )
    return ModelError(
        f"{where} failed: {type(err).__name__}: {scrub(provider_message(err))}",
        error_type=MODEL_PROVIDER_ERROR,
    )
