"""The runner's exception root."""

from __future__ import annotations


class RunnerError(Exception):
    """Root of every error the runner raises on purpose."""


class ExecutionClosedError(RunnerError):
    """The orchestrator refused a report: the execution is already terminal."""


class OrchestratorUnavailableError(RunnerError):
    """RunnerService could not be reached after every attempt."""
