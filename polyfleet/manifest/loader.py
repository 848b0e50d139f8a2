"""Reading YAML manifests and mapping every problem to file, field path and line."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from polyfleet.manifest.convert import agent_message, resolve_relative_paths
from polyfleet.manifest.errors import ManifestError
from polyfleet.manifest.rules import Loc, problems
from polyfleet.manifest.schema import API_VERSION, AgentManifest, WorkflowManifest
from polyfleet.manifest.workflow import (
    JsonYamlLoader,
    document_problems,
    dump_document,
    pointer_parts,
    workflow_message,
)
from polyfleet.v1 import agent_pb2, workflow_pb2

Resource = agent_pb2.Agent | workflow_pb2.Workflow

AGENT_KIND = "Agent"
WORKFLOW_KIND = "Workflow"
KINDS = (AGENT_KIND, WORKFLOW_KIND)

_Manifest = TypeVar("_Manifest", bound=BaseModel)


def load_resources(path: str | Path) -> list[Resource]:
    """Load every manifest in a YAML file, of any kind.

    Paths of stdio MCP servers that start with ``./`` or ``../`` are made absolute against
    the file's directory (see :func:`resolve_relative_paths`), and a Workflow's
    ``documentFile`` is read relative to it.

    Args:
        path: The manifest file.

    Returns:
        One Agent or Workflow message per YAML document, in file order.

    Raises:
        ManifestError: The file cannot be read, is not valid YAML, holds no manifest, or a
            manifest (or a workflow's document) is invalid.

    """
    return _parse(_read(path), path, Path(path).parent, KINDS)


def parse_resources(
    text: str, path: str | Path = "<string>", *, base_dir: str | Path | None = None
) -> list[Resource]:
    """Parse manifests of any kind from YAML text.

    Args:
        text: YAML with one or more documents separated by ``---``.
        path: Name of the source, used in error messages.
        base_dir: When given, ``./`` and ``../`` paths of stdio MCP servers are made
            absolute against it; when None they are kept as written. A Workflow's
            ``documentFile`` is read relative to it, or to the working directory.

    Returns:
        One Agent or Workflow message per non-empty YAML document, in order.

    Raises:
        ManifestError: The text is not valid YAML, holds no manifest, or a manifest is
            invalid.

    """
    return _parse(text, path, base_dir, KINDS)


def load_manifests(path: str | Path) -> list[agent_pb2.Agent]:
    """Load a YAML file of Agent manifests (:func:`load_resources` takes every kind).

    Args:
        path: The manifest file.

    Returns:
        One message per YAML document, in file order.

    Raises:
        ManifestError: As for :func:`load_resources`, or a manifest of another kind.

    """
    return _agents(_parse(_read(path), path, Path(path).parent, (AGENT_KIND,)))


def parse_manifests(
    text: str, path: str | Path = "<string>", *, base_dir: str | Path | None = None
) -> list[agent_pb2.Agent]:
    """Parse Agent manifests from YAML text (:func:`parse_resources` takes every kind).

    Args:
        text: YAML with one or more documents separated by ``---``.
        path: Name of the source, used in error messages.
        base_dir: When given, ``./`` and ``../`` paths of stdio MCP servers are made
            absolute against it; when None they are kept as written.

    Returns:
        One message per non-empty YAML document, in order.

    Raises:
        ManifestError: As for :func:`parse_resources`, or a manifest of another kind.

    """
    return _agents(_parse(text, path, base_dir, (AGENT_KIND,)))


def _agents(resources: Sequence[Resource]) -> list[agent_pb2.Agent]:
    return [r for r in resources if isinstance(r, agent_pb2.Agent)]


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(path, None, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(path, None, f"cannot read file: {exc}") from exc


def _parse(
    text: str, path: str | Path, base_dir: str | Path | None, kinds: Collection[str]
) -> list[Resource]:
    resources = [
        _to_resource(path, data, node, base_dir, kinds) for data, node in _documents(text, path)
    ]
    if not resources:
        raise ManifestError(path, None, "no manifests found")
    if base_dir is not None:
        for resource in resources:
            if isinstance(resource, agent_pb2.Agent):
                resolve_relative_paths(resource, base_dir)
    return resources


def _documents(text: str, path: str | Path) -> list[tuple[Any, yaml.Node]]:
    # Keep each document's node graph next to its data so validation errors can be
    # mapped back to line numbers.
    loader = JsonYamlLoader(text)
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


def _to_resource(
    path: str | Path,
    data: Any,
    node: yaml.Node,
    base_dir: str | Path | None,
    kinds: Collection[str],
) -> Resource:
    line = node.start_mark.line + 1
    if not isinstance(data, dict):
        raise ManifestError(path, None, "a manifest must be a YAML mapping", line=line)
    kind = _check_header(path, data, node, kinds)
    if kind == WORKFLOW_KIND:
        workflow = _validated(WorkflowManifest, path, data, node)
        return _to_workflow(path, workflow, node, Path.cwd() if base_dir is None else base_dir)
    manifest = _validated(AgentManifest, path, data, node)
    found = problems(manifest)
    if found:
        raise ManifestError.of(
            [
                ManifestError(path, _dotted(loc), text, line=_line_of(node, loc))
                for loc, text in found
            ]
        )
    return agent_message(manifest)


def _check_header(
    path: str | Path, data: dict[Any, Any], node: yaml.Node, kinds: Collection[str]
) -> str:
    # The kind decides which schema applies, so it is checked before the schema is.
    def fail(field: str, message: str) -> ManifestError:
        return ManifestError(path, field, message, line=_line_of(node, (field,)))

    accepted = " or ".join(repr(k) for k in kinds)
    version = data.get("apiVersion")
    if version is None:
        raise fail("apiVersion", f"field required (use {API_VERSION!r})")
    if version != API_VERSION:
        raise fail("apiVersion", f"unsupported apiVersion {version!r} (use {API_VERSION!r})")
    kind = data.get("kind")
    if kind is None:
        raise fail("kind", f"field required (use {accepted})")
    if kind in KINDS and kind not in kinds:
        raise fail("kind", f"a {kind} manifest is not accepted here (use {accepted})")
    if kind not in kinds:
        raise fail("kind", f"unknown kind {kind!r} (supported: {', '.join(map(repr, kinds))})")
    return str(kind)


def _validated(
    schema: type[_Manifest], path: str | Path, data: dict[Any, Any], node: yaml.Node
) -> _Manifest:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ManifestError.of(
            [_from_pydantic(path, data, node, e) for e in exc.errors()]
        ) from None


def _to_workflow(
    path: str | Path, manifest: WorkflowManifest, node: yaml.Node, base_dir: str | Path
) -> workflow_pb2.Workflow:
    spec = manifest.spec
    if spec.document is not None:
        text = dump_document(spec.document)
        # Inline, a problem's pointer continues the manifest's field path, with its lines.
        errors = [
            ManifestError(
                path,
                f"spec.document{problem.pointer}",
                problem.message,
                line=_line_of(node, ("spec", "document", *pointer_parts(problem.pointer))),
            )
            for problem in document_problems(text)
        ]
    else:
        file = Path(base_dir) / spec.document_file
        text = _read_document(path, node, file)
        found = document_problems(text)
        # In a file of its own, a problem is in that file, at the pointer's line there.
        document_node = _compose(text) if found else None
        errors = [
            ManifestError(
                file,
                problem.pointer or None,
                problem.message,
                line=(
                    _line_of(document_node, pointer_parts(problem.pointer))
                    if document_node is not None and problem.pointer
                    else None
                ),
            )
            for problem in found
        ]
    if errors:
        raise ManifestError.of(errors)
    return workflow_message(manifest, text)


def _read_document(path: str | Path, node: yaml.Node, file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        message = f"file not found: {file}"
    except (OSError, UnicodeDecodeError) as exc:
        message = f"cannot read {file}: {exc}"
    line = _line_of(node, ("spec", "documentFile"))
    raise ManifestError(path, "spec.documentFile", message, line=line)


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=JsonYamlLoader)
    except yaml.YAMLError:
        return None


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
    # Walk the YAML node graph along loc; a missing field reports its parent's line. A field
    # is on its key's line: a mapping or list value starts on the next line.
    current = node
    line = int(node.start_mark.line)
    for item in loc:
        child: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode):
            pair = next(((k, v) for k, v in current.value if k.value == item), None)
            if pair is not None:
                key, child = pair
                line = int(key.start_mark.line)
        elif isinstance(current, yaml.SequenceNode):
            # JSON pointers spell indexes as strings ("/do/0").
            index = int(item) if isinstance(item, str) and item.isdigit() else item
            if isinstance(index, int) and 0 <= index < len(current.value):
                child = current.value[index]
                line = int(child.start_mark.line)
        if child is None:
            break
        current = child
    return line + 1
