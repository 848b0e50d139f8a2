"""The DSL package's exceptions: document problems and RFC 7807 workflow errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_SPEC_ERRORS = "https://serverlessworkflow.io/spec/1.0.0/errors/"

#: Standard error types of the DSL (dsl-reference "Standard Error Types").
CONFIGURATION = _SPEC_ERRORS + "configuration"
VALIDATION = _SPEC_ERRORS + "validation"
EXPRESSION = _SPEC_ERRORS + "expression"
AUTHENTICATION = _SPEC_ERRORS + "authentication"
AUTHORIZATION = _SPEC_ERRORS + "authorization"
TIMEOUT = _SPEC_ERRORS + "timeout"
COMMUNICATION = _SPEC_ERRORS + "communication"
RUNTIME = _SPEC_ERRORS + "runtime"
#: The members of an RFC 7807 error object (`raise.error`, `use.errors`, `catch.errors.with`).
ERROR_FIELDS = frozenset({"type", "status", "title", "detail", "instance"})


class DslError(Exception):
    """Root of every error the DSL package raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a workflow document, located by a JSON pointer."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


class InvalidDocumentError(DslError):
    """The document cannot be run; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class WorkflowError(DslError):
    """An RFC 7807 problem raised while a workflow runs: what `try`/`catch` catches.

    Attributes:
        type: URI of the error type, e.g. :data:`COMMUNICATION`.
        status: the status code (HTTP-like), when one applies.
        title: short human summary.
        detail: explanation of this occurrence.
        instance: JSON pointer of the task that raised it ("" for the workflow).
    """

    def __init__(
        self,
        type: str,
        status: int | None = None,
        title: str = "",
        detail: str = "",
        instance: str = "",
    ) -> None:
        self.type = type
        self.status = status
        self.title = title
        self.detail = detail
        self.instance = instance
        super().__init__(self._text())

    def _text(self) -> str:
        head = self.title or self.type.rsplit("/", 1)[-1]
        where = f" at {self.instance}" if self.instance else ""
        status = f" ({self.status})" if self.status is not None else ""
        tail = f": {self.detail}" if self.detail else ""
        return f"{head}{status}{where}{tail}"

    def __str__(self) -> str:
        return self._text()

    def as_dict(self) -> dict[str, Any]:
        """The error as the JSON object that expressions (`$error`) and checkpoints see."""
        out: dict[str, Any] = {"type": self.type, "status": self.status}
        for key in ("title", "detail", "instance"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowError:
        """Rebuild an error from :meth:`as_dict` output (or a `raise` error object)."""
        status = data.get("status")
        return cls(
            type=str(data.get("type") or RUNTIME),
            status=int(status) if isinstance(status, int | float) else None,
            title=str(data.get("title") or ""),
            detail=str(data.get("detail") or ""),
            instance=str(data.get("instance") or ""),
        )

    def located(self, instance: str) -> WorkflowError:
        """This error with ``instance`` set, unless it already names where it came from."""
        if self.instance:
            return self
        return WorkflowError(self.type, self.status, self.title, self.detail, instance)
