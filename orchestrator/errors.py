"""The orchestrator's exception root and the errors its services raise.

Each error maps to one canonical gRPC status code at the API edge
(see :mod:`orchestrator.servicers.errors`).
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Root of every error the orchestrator's services raise on purpose."""


class InvalidArgumentError(OrchestratorError):
    """A request field is missing or malformed."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class NotFoundError(OrchestratorError):
    """A referenced resource does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} '{key}' not found")


class FailedPreconditionError(OrchestratorError):
    """The request is valid but the system is not in a state to serve it."""


class ExecutionDeadlineError(OrchestratorError):
    """A synchronous Execute gave up waiting; the execution keeps running."""

    def __init__(self, execution_id: str, waited: float) -> None:
        self.execution_id = execution_id
        self.waited = waited
        super().__init__(
            f"execution {execution_id} did not finish within {waited:g}s; it is still running "
            f"(watch it with the Watch RPC or `polyfleet executions watch {execution_id}`)"
        )


class WorkflowStartError(OrchestratorError):
    """Temporal refused or could not be reached to start an execution's workflow."""

    def __init__(self, execution_id: str, reason: str) -> None:
        self.execution_id = execution_id
        self.reason = reason
        super().__init__(f"execution {execution_id} failed to start its workflow: {reason}")


def invalid_page_token() -> InvalidArgumentError:
    """The error for a ``page_token`` that this API did not issue."""
    return InvalidArgumentError("page_token", "is not a token this API issued")
