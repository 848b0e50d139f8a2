"""The exception every manifest problem is reported as."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class ManifestError(Exception):
    """A manifest could not be read or is invalid.

    Attributes:
        path: The file the problem is in (``<stdin>`` for standard input).
        field: Dotted path of the offending field, e.g. ``spec.model.provider``; None when
            the problem is not about one field (unreadable file, YAML syntax).
        message: What is wrong.
        line: 1-based line of the problem in the file, when known.
        column: 1-based column, for YAML syntax errors.
        additional: Further problems found in the same document, reported together so a
            user can fix them in one pass.

    """

    def __init__(
        self,
        path: str | Path,
        field: str | None,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        additional: Sequence[ManifestError] = (),
    ) -> None:
        self.path = str(path)
        self.field = field
        self.message = message
        self.line = line
        self.column = column
        self.additional = tuple(additional)
        super().__init__(self._describe())

    @classmethod
    def of(cls, errors: Sequence[ManifestError]) -> ManifestError:
        """Combine the problems of one document into one error, the first one leading.

        Args:
            errors: At least one problem.

        Returns:
            The first problem, carrying the others in ``additional``.

        """
        first, *rest = errors
        return cls(
            first.path,
            first.field,
            first.message,
            line=first.line,
            column=first.column,
            additional=rest,
        )

    def _describe(self) -> str:
        if self.field is not None:
            text = f"{self.path}: {self.field}: {self.message}"
            return f"{text} (line {self.line})" if self.line is not None else text
        if self.line is not None:
            where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
            return f"{self.path}: {where}: {self.message}"
        return f"{self.path}: {self.message}"

    def __str__(self) -> str:
        return "\n".join([self._describe(), *(e._describe() for e in self.additional)])
