"""Graphton's errors: each carries the stable ``type`` the workflow puts into the status.

Failures the workflow host raises too (secrets, output size) live in :mod:`runner.errors`.
"""

from __future__ import annotations

from runner.errors import ActivityFailedError


class GraphtonError(ActivityFailedError):
    """A failure of the agent runtime that retrying the activity cannot fix."""


class ModelError(GraphtonError):
    """A model provider call failed.

    Attributes:
        transient: Whether another attempt of the same call may succeed (429, 5xx,
            timeouts, dropped connections).
        status_code: The provider's HTTP status, when there was one.
        retry_after: Seconds the provider asked us to wait, when it said so.

    """

    default_type = "ModelProviderError"

    def __init__(
        self,
        message: str,
        *,
        error_type: str | None = None,
        transient: bool = False,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, error_type=error_type)
        self.transient = transient
        self.status_code = status_code
        self.retry_after = retry_after


# Stable ModelError types (the contract's ``ModelProviderError`` is the catch-all).
MODEL_PROVIDER_ERROR = "ModelProviderError"
MODEL_AUTHENTICATION_ERROR = "ModelAuthenticationError"
MODEL_RATE_LIMITED = "ModelRateLimited"
MODEL_PROVIDER_UNAVAILABLE = "ModelProviderUnavailable"
MODEL_RESPONSE_INVALID = "ModelResponseInvalid"


class McpServerError(GraphtonError):
    """An MCP server could not be started, reached or listed."""

    default_type = "McpServerError"


class GraphImportError(GraphtonError):
    """The agent's ``graph`` could not be imported as a compiled LangGraph graph."""

    default_type = "GraphNotFound"


class AgentTimeoutError(GraphtonError):
    """The execution ran longer than the agent's ``limits.timeout``."""

    default_type = "AgentTimeout"


class MaxStepsExceededError(GraphtonError):
    """The agent needed more steps than ``limits.max_steps`` allows."""

    default_type = "MaxStepsExceeded"


class StructuredOutputError(GraphtonError):
    """The final answer is not JSON that conforms to the agent's ``output_schema``."""

    default_type = "StructuredOutputInvalid"
