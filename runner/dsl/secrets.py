"""Keeping secret values out of everything that leaves the runner: reports, checkpoints, errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from runner.dsl.errors import WorkflowError

REDACTED = "[redacted]"


class Redactor:
    """Replaces every occurrence of any secret value inside JSON-like data."""

    def __init__(self, values: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._values = sorted({v for v in values if v}, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._values)

    def text(self, value: str) -> str:
        """``value`` with every secret replaced."""
        for secret in self._values:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def scrub(self, value: Any) -> Any:
        """A copy of ``value`` (strings, keys, nested containers) without secret values."""
        if not self._values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    def error(self, error: WorkflowError) -> WorkflowError:
        """``error`` with secret values removed from its texts."""
        if not self._values:
            return error
        return WorkflowError(
            self.text(error.type),
            error.status,
            self.text(error.title),
            self.text(error.detail),
            self.text(error.instance),
        )
