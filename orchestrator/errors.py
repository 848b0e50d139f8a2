"""The orchestrator's exception root and the errors its services raise.

Each error maps to one canonical gRPC status code at the API edge
(see :mod:`orchestrator.servicers.errors`), which also sends its typed attributes as
``google.rpc`` error details. Messages quote caller input only through
:mod:`polyfleet.quoting`, so an error never grows with the request.
"""

from __future__ import annotations

from collections.abc import Sequence

from polyfleet.quoting import excerpt, quote


class OrchestratorError(Exception):
    """Root of every error the orchestrator's services raise on purpose.

    Attributes:
        reason_code: Stable machine-readable reason, sent as ``ErrorInfo.reason``; empty
            means the edge derives it from the class name.
        execution_id: The execution the error is about, if any (``ErrorInfo`` metadata).
    """

    reason_code: str = ""
    execution_id: str = ""


class InvalidArgumentError(OrchestratorError):
    """A request field is missing or malformed.

    Attributes:
        field: Path of the offending field, e.g. ``execution.message``: clients get it as
            the ``BadRequest`` field violation, so it is data, not text to parse.
        problem: What is wrong with it.
        violations: Every ``(field, problem)`` found, the first being ``field`` and
            ``problem``: clients get one ``BadRequest`` field violation each.
    """

    # A status travels in HTTP/2 trailers, which clients cap (8 KB by default, the details
    # base64-encoded): the violations after the first stop at this many characters.
    MAX_VIOLATION_CHARS = 3000

    def __init__(
        self, field: str, problem: str, *, violations: Sequence[tuple[str, str]] = ()
    ) -> None:
        # Field paths can embed caller input (map keys, document pointers).
        self.field = excerpt(field, 200)
        self.problem = excerpt(problem, 500)
        kept = [(self.field, self.problem)]
        size = len(self.field) + len(self.problem)
        for f, p in violations[1:]:
            pair = (excerpt(f, 200), excerpt(p, 500))
            size += len(pair[0]) + len(pair[1])
            if size > self.MAX_VIOLATION_CHARS:
                break
            kept.append(pair)
        self.violations = tuple(kept)
        more = len(violations) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
        super().__init__(f"{self.field}: {self.problem}{suffix}")

    @classmethod
    def of(cls, violations: Sequence[tuple[str, str]]) -> InvalidArgumentError:
        """One error for several invalid fields, the first one leading.

        Args:
            violations: At least one ``(field, problem)``.
        """
        field, problem = violations[0]
        return cls(field, problem, violations=violations)


class NotFoundError(OrchestratorError):
    """A referenced resource does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {quote(key)} not found")


class FailedPreconditionError(OrchestratorError):
    """The request is valid but the system is not in a state to serve it.

    Args:
        message: What is in the way, for people.
        reason_code: Stable reason for clients, e.g. ``SESSION_BUSY``.
        execution_id: The execution in the way, if one is.
    """

    def __init__(self, message: str, *, reason_code: str = "", execution_id: str = "") -> None:
        self.reason_code = reason_code
        self.execution_id = execution_id
        super().__init__(message)


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


class UnavailableError(OrchestratorError):
    """Something the orchestrator depends on (Temporal) cannot be reached; retry later."""


class UnauthenticatedError(OrchestratorError):
    """The call carries no credential, or one that does not verify.

    The message says what is wrong for the caller to fix; it never holds the credential.
    """

    reason_code = "UNAUTHENTICATED"


class PermissionDeniedError(OrchestratorError):
    """The caller is authenticated but its role does not allow the call."""


class RunnerNotBoundError(PermissionDeniedError):
    """A runner's call is about another execution than the one whose activity it runs."""

    reason_code = "RUNNER_NOT_BOUND"


class RateLimitedError(OrchestratorError):
    """The caller is over a per-caller limit (Create rate, concurrent Watch streams).

    Attributes:
        kind: Which limit: ``create-rate`` or ``watch-streams``.
    """

    def __init__(self, message: str, *, kind: str) -> None:
        self.kind = kind
        super().__init__(message)


def invalid_page_token() -> InvalidArgumentError:
    """The error for a ``page_token`` that this API did not issue."""
    return InvalidArgumentError("page_token", "is not a token this API issued")
