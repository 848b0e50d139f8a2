"""The one redactor: keeps secret values out of everything a process hands on.

The agent runtime (``runner/``) scrubs reports, thread messages, errors and logs with it; the
DSL (``polyfleet/dsl``) scrubs task reports, checkpoints, raised errors and the workflow
output. Both replace a secret value by the same marker, :data:`REDACTED`, so a reader of a
status, a log or a checkpoint recognises a hidden value whichever part hid it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"
# Shorter values are not redacted: replacing every "ab" in a report or a checkpoint would
# garble it while protecting nothing a real credential needs.
MIN_REDACTED_LENGTH = 4


class Redactor:
    """Replaces every occurrence of any secret value by :data:`REDACTED`."""

    def __init__(self, values: Iterable[str]) -> None:
        """Redact ``values`` (those shorter than :data:`MIN_REDACTED_LENGTH` are kept)."""
        # Longest first, so a secret that contains another is replaced whole.
        self._values = sorted(
            {v for v in values if len(v) >= MIN_REDACTED_LENGTH}, key=len, reverse=True
        )

    def __bool__(self) -> bool:
        """Whether there is anything to redact."""
        return bool(self._values)

    def text(self, value: str) -> str:
        """``value`` with every secret value replaced."""
        for secret in self._values:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def data(self, value: Any) -> Any:
        """A copy of JSON-like ``value`` (strings, keys, nested containers) without secrets."""
        if not self._values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value
