"""Reading YAML manifests and mapping every problem to file, field path and line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from polyfleet.manifest.convert import agent_message, resolve_relative_paths
from polyfleet.manifest.errors import ManifestError
from polyfleet.manifest.rules import Loc, problems
from polyfleet.manifest.schema import API_VERSION, AgentManifest
from polyfleet.v1 import agent_pb2

# Kinds that are part of the format but not implemented by this version of the CLI.
_FUTURE_KINDS = frozenset({"Workflow"})


def load_manifests(path: str | Path) -> list[agent_pb2.Agent]:
    """Load every manifest in a YAML file.

    Paths of stdio MCP servers that start with ``./`` or ``../`` are made absolute against
    the file's directory (see :func:`resolve_relative_paths`).

    Args:
        path: The manifest file.

    Returns:
        One message per YAML document, in file order.

    Raises:
        ManifestError: The file cannot be read, is not valid YAML, holds no manifest, or a
            manifest is invalid.

    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(path, None, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(path, None, f"cannot read file: {exc}") from exc
    return parse_manifests(text, path, base_dir=Path(path).parent)


def parse_manifests(
    text: str, path: str | Path = "<string>", *, base_dir: str | Path | None = None
) -> list[agent_pb2.Agent]:
    """Parse manifests from YAML text.

    Args:
        text: YAML with one or more documents separated by ``---``.
        path: Name of the source, used in error messages.
        base_dir: When given, ``./`` and ``../`` paths of stdio MCP servers are made
            absolute against it; when None they are kept as written.

    Returns:
        One message per non-empty YAML document, in order.

    Raises:
        ManifestError: The text is not valid YAML, holds no manifest, or a manifest is
            invalid.

    """
    manifests = [_to_agent(path, data, node) for data, node in _documents(text, path)]
    if not manifests:
        raise ManifestError(path, None, "no manifests found")
    if base_dir is not None:
        for agent in manifests:
            resolve_relative_paths(agent, base_dir)
    return manifests


def _documents(text: str, path: str | Path) -> list[tuple[Any, yaml.Node]]:
    # Keep each document's node graph next to its data so validation errors can be
    # mapped back to line numbers.
    loader = yaml.SafeLoader(text)
    documents: list[tuple[Any, yaml.Node]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            data = loader.construct_document(node)
            if data is not None and node is not None:
                documents.append((data, node))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise ManifestError(
            path, None, f"invalid YAML: {problem}", line=line, column=column
        ) from exc
    except yaml.YAMLError as exc:
        raise ManifestError(path, None, f"invalid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return documents


def _to_agent(path: str | Path, data: Any, node: yaml.Node) -> agent_pb2.Agent:
    line = node.start_mark.line + 1
    if not isinstance(data, dict):
        raise ManifestError(path, None, "a manifest must be a YAML mapping", line=line)
    _check_header(path, data, node)
    try:
        manifest = AgentManifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError.of(
            [_from_pydantic(path, data, node, e) for e in exc.errors()]
        ) from None
    found = problems(manifest)
    if found:
        raise ManifestError.of(
            [
                ManifestError(path, _dotted(loc), text, line=_line_of(node, loc))
                for loc, text in found
            ]
        )
    return agent_message(manifest)


def _check_header(path: str | Path, data: dict[Any, Any], node: yaml.Node) -> None:
    # The kind decides which schema applies, so it is checked before the schema is.
    def fail(field: str, message: str) -> ManifestError:
        return ManifestError(path, field, message, line=_line_of(node, (field,)))

    version = data.get("apiVersion")
    if version is None:
        raise fail("apiVersion", f"field required (use {API_VERSION!r})")
    if version != API_VERSION:
        raise fail("apiVersion", f"unsupported apiVersion {version!r} (use {API_VERSION!r})")
    kind = data.get("kind")
    if kind is None:
        raise fail("kind", "field required (use 'Agent')")
    if kind in _FUTURE_KINDS:
        raise fail("kind", f"kind {kind} is not supported yet")
    if kind != "Agent":
        raise fail("kind", f"unknown kind {kind!r} (supported: 'Agent')")


def _from_pydantic(
    path: str | Path, data: Any, node: yaml.Node, error: ErrorDetails
) -> ManifestError:
    loc = _data_loc(error["loc"], data)
    message = _error_message(error)
    if "[key]" in error["loc"]:
        # YAML 1.1 reads unquoted on/off/yes/no as booleans, a classic trap in mapping keys.
        message = f"keys must be strings, got {error.get('input')!r} (quote the key)"
    return ManifestError(path, _dotted(loc), message, line=_line_of(node, loc))


def _data_loc(loc: tuple[int | str, ...], data: Any) -> Loc:
    # pydantic's loc interleaves type tags (e.g. "list", "dict" inside JsonValue) with
    # real keys; keep only the items that exist in the document, plus a final missing key.
    kept: list[int | str] = []
    current = data
    for index, item in enumerate(loc):
        in_mapping = isinstance(current, dict) and item in current
        in_sequence = (
            isinstance(current, list) and isinstance(item, int) and 0 <= item < len(current)
        )
        if in_mapping:
            # pydantic reports a YAML boolean key as 1/0; show the key as the document has it.
            key = next(k for k in current if k == item)
            current = current[key]
            kept.append(key)
        elif in_sequence:
            current = current[item]
            kept.append(item)
        elif index == len(loc) - 1 and isinstance(current, dict):
            kept.append(item)
    return tuple(kept)


def _dotted(loc: Sequence[int | str]) -> str:
    text = ""
    for item in loc:
        is_index = isinstance(item, int) and not isinstance(item, bool)
        text += f"[{item}]" if is_index else (f".{item}" if text else str(item))
    return text or "<document>"


def _error_message(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return "unknown field"
    message = error["msg"].removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    value = error.get("input")
    if kind.endswith("_type") and isinstance(value, str | int | float | bool):
        message += f" (got {value!r})"
    return message


def _line_of(node: yaml.Node, loc: Sequence[int | str]) -> int:
    # Walk the YAML node graph along loc; a missing field reports its parent's line.
    current = node
    for item in loc:
        child: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode):
            child = next((v for k, v in current.value if k.value == item), None)
        elif isinstance(current, yaml.SequenceNode) and isinstance(item, int):
            child = current.value[item] if 0 <= item < len(current.value) else None
        if child is None:
            break
        current = child
    return int(current.start_mark.line) + 1
