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

    def extended(self, values: Iterable[str]) -> Redactor:
        """A redactor of this one's values and ``values`` (e.g. a token obtained later)."""
        return Redactor([*self._values, *values])

    def text(self, value: str) -> str:
        """``value`` with every secret value replaced."""
        for secret in self._values:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def stream_cut(self, text: str) -> int:
        """How much of ``text``, a stream's pending text, may be redacted and sent now.

        More text may follow, so a secret can be split across pieces. The cut leaves out
        every tail that could still begin a secret, and never falls inside a secret that
        ``text`` holds whole: redacting ``text[:cut]`` now and the rest together with what
        follows hides every secret however the stream is split. The tail is at most the
        longest secret's length long unless it holds that secret whole.
        """
        cut = len(text)
        for secret in self._values:
            for k in range(min(len(secret) - 1, len(text)), 0, -1):
                if text.endswith(secret[:k]):
                    cut = min(cut, len(text) - k)
                    break
        moved = True
        while moved:  # the cut only moves back, to the start of a secret it would split
            moved = False
            for secret in self._values:
                start = text.find(secret, max(0, cut - len(secret) + 1))
                if 0 <= start < cut:
                    cut = start
                    moved = True
        return cut

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
