"""The runner's exception root, and the failures every part of the runner raises.

Every message of an :class:`ActivityFailedError` must already be free of secret values: the
activity copies it into an ``ApplicationError``, Temporal's history and the execution's status.
"""

from __future__ import annotations

from typing import ClassVar

from polyfleet import contract


class RunnerError(Exception):
    """Root of every error the runner raises on purpose."""


class ExecutionClosedError(RunnerError):
    """The orchestrator refused a report: the execution is already terminal."""


class OrchestratorUnavailableError(RunnerError):
    """RunnerService could not be reached after every attempt."""


class ActivityFailedError(RunnerError):
    """An execution failure that retrying the activity cannot fix.

    The agent runtime (:mod:`runner.graphton`) and the workflow host raise subclasses; the
    activity turns any of them into a non-retryable ``ApplicationError`` of its type.

    Attributes:
        error_type: Stable machine-readable type, e.g. ``ModelAuthenticationError``.
        message: What failed and why, without secret values.

    """

    default_type: ClassVar[str] = "AgentRuntimeError"

    def __init__(self, message: str, *, error_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type or self.default_type


class SecretError(ActivityFailedError):
    """A secret is not declared by the agent or has no value on this runner."""

    default_type = "SecretNotFound"


class OutputTooLargeError(ActivityFailedError):
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
