"""Parse workflow documents from YAML or JSON text."""

from __future__ import annotations

import json
from typing import Any

import yaml

from polyfleet.dsl.errors import InvalidDocumentError, Problem


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps every scalar JSON-compatible.

    YAML 1.1 turns `2024-01-01` into a `date`, which jq cannot take and a checkpoint
    cannot serialize; workflow data must stay plain JSON, so timestamps stay strings.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_document(text: str) -> dict[str, Any]:
    """Parse a workflow document.

    Args:
        text: the document as YAML (or JSON, which is parsed as such when it looks like it).

    Returns:
        The document as plain JSON-compatible data.

    Raises:
        InvalidDocumentError: the text does not parse, or is not a mapping at the top.
    """
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidDocumentError(
                [Problem("", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")]
            ) from exc
    else:
        try:
            data = yaml.load(text, Loader=_Loader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise InvalidDocumentError(
                [Problem("", f"invalid YAML{where}: {exc.problem or exc}")]
            ) from exc
        except yaml.YAMLError as exc:
            raise InvalidDocumentError([Problem("", f"invalid YAML: {exc}")]) from exc
    if not isinstance(data, dict):
        raise InvalidDocumentError(
            [Problem("", f"a workflow document must be a mapping, not {type(data).__name__}")]
        )
    return data
