"""Classifying provider failures into stable, secret-free error types."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest

from runner.graphton.errors import ModelError
from runner.graphton.provider_errors import classify_model_error

KEY = "sk-live-SECRET-abcdef"
WHERE = "openai model 'gpt' at http://127.0.0.1:1/v1"
_REQUEST = httpx2.Request("POST", "http://127.0.0.1:1/v1/chat/completions")


def _scrub(text: str) -> str:
    return text.replace(KEY, "[REDACTED]")


def _openai_error(
    cls: type[openai.APIStatusError], status: int, body: dict[str, Any], **headers: str
) -> openai.APIStatusError:
    response = httpx2.Response(status, request=_REQUEST, headers=headers, json={"error": body})
    return cls(f"Error code: {status} - {body}", response=response, body=body)


def _classify(err: BaseException) -> ModelError:
    return classify_model_error(err, WHERE, _scrub)


@pytest.mark.parametrize(
    ("cls", "status", "expected", "transient"),
    [
        (openai.AuthenticationError, 401, "ModelAuthenticationError", False),
        (openai.PermissionDeniedError, 403, "ModelAuthenticationError", False),
        (openai.RateLimitError, 429, "ModelRateLimited", True),
        (openai.InternalServerError, 500, "ModelProviderUnavailable", True),
        (openai.InternalServerError, 503, "ModelProviderUnavailable", True),
        (openai.BadRequestError, 400, "ModelProviderError", False),
        (openai.NotFoundError, 404, "ModelProviderError", False),
    ],
)
def test_http_statuses_map_to_stable_types(
    cls: type[openai.APIStatusError], status: int, expected: str, transient: bool
) -> None:
    error = _classify(_openai_error(cls, status, {"message": f"said {KEY}", "code": "c"}))
    assert error.error_type == expected
    assert error.transient is transient
    assert error.status_code == status
    assert error.message == f"{WHERE} answered HTTP {status}: said [REDACTED]"
    assert KEY not in str(error)


def test_429_out_of_quota_is_not_retried_and_retry_after_is_read() -> None:
    quota = _openai_error(
        openai.RateLimitError, 429, {"message": "no credit", "code": "insufficient_quota"}
    )
    assert _classify(quota).transient is False
    slow = _openai_error(openai.RateLimitError, 429, {"message": "slow"}, **{"retry-after": "7"})
    assert _classify(slow).retry_after == 7.0


def test_anthropic_shaped_errors_are_read_by_duck_typing() -> None:
    class OverloadedError(Exception):
        status_code = 529
        body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}

    error = _classify(OverloadedError("raw"))
    assert error.error_type == "ModelProviderUnavailable"
    assert error.message.endswith("HTTP 529: Overloaded")


def test_ollama_shaped_errors_use_their_error_text() -> None:
    class ResponseError(Exception):
        def __init__(self) -> None:
            super().__init__("model 'x' not found")
            self.error = "model 'x' not found"
            self.status_code = 404

    error = _classify(ResponseError())
    assert error.error_type == "ModelProviderError"
    assert "model 'x' not found" in error.message


def test_timeouts_and_connection_failures_are_transient_unavailability() -> None:
    for err in (
        openai.APITimeoutError(request=_REQUEST),
        TimeoutError(),
        openai.APIConnectionError(request=_REQUEST),
        ConnectionRefusedError("refused"),
    ):
        error = _classify(err)
        assert error.error_type == "ModelProviderUnavailable", err
        assert error.transient, err


def test_causes_are_followed() -> None:
    try:
        try:
            raise openai.APITimeoutError(request=_REQUEST)
        except openai.APITimeoutError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert _classify(outer).error_type == "ModelProviderUnavailable"


def test_malformed_responses_are_response_invalid() -> None:
    try:
        json.loads("{not json")
    except json.JSONDecodeError as err:
        error = _classify(err)
    assert error.error_type == "ModelResponseInvalid"
    assert not error.transient
    validation = openai.APIResponseValidationError(
        httpx2.Response(200, request=_REQUEST), body={"x": 1}
    )
    assert _classify(validation).error_type == "ModelResponseInvalid"


def test_anything_else_is_a_provider_error_with_the_scrubbed_text() -> None:
    error = _classify(ValueError(f"bad parameter with {KEY}"))
    assert error.error_type == "ModelProviderError"
    assert error.message == f"{WHERE} failed: ValueError: bad parameter with [REDACTED]"


def test_model_errors_pass_through() -> None:
    original = ModelError("scripted", error_type="ModelProviderError")
    assert _classify(original) is original
