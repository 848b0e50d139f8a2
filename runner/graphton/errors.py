"""Graphton's errors: each carries the stable ``type`` the workflow puts into the status.

Every message here must already be free of secret values: the activity copies it into
an ``ApplicationError``, Temporal's history and the execution's status.
"""

from __future__ import annotations

from typing import ClassVar

from polyfleet import contract
from runner.errors import RunnerError


class GraphtonError(RunnerError):
    """An execution failure that retrying the activity cannot fix.

    Attributes:
        error_type: Stable machine-readable type, e.g. ``ModelAuthenticationError``.
        message: What failed and why, without secret values.

    """

    default_type: ClassVar[str] = "AgentRuntimeError"

    def __init__(self, message: str, *, error_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type or self.default_type


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


class SecretError(GraphtonError):
    """A secret is not declared by the agent or has no value on this runner."""

    default_type = "SecretNotFound"


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


class OutputTooLargeError(GraphtonError):
    """An answer, output or task result is larger than the orchestrator accepts."""

    default_type = contract.OUTPUT_TOO_LARGE

    @classmethod
    def check(cls, what: str, size: int, limit: int) -> None:
        """Raise when ``size`` bytes of ``what`` exceed ``limit`` (0: no limit).

        Raises:
            OutputTooLargeError: Says what, its size and the limit.

        """
        if limit and size > limit:
            raise cls(
                f"{what} is {size} bytes ({size / _MIB:.1f} MiB); the limit is {limit} bytes "
                f"({limit / _MIB:.1f} MiB, POLYFLEET_MAX_OUTPUT_BYTES)"
            )


_MIB = 1024 * 1024


class StructuredOutputError(GraphtonError):
    """The final answer is not JSON that conforms to the agent's ``output_schema``."""

    default_type = "StructuredOutputInvalid"
