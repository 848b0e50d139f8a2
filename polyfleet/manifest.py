"""Load Kubernetes-style YAML manifests into polyfleet API messages.

A manifest file holds one or more YAML documents separated by ``---``::

    apiVersion: polyfleet/v1
    kind: Agent
    metadata:
      name: assistant
      labels: {team: demo}
    spec:
      description: A friendly assistant
      instructions: You are a concise, friendly assistant.
      model:
        provider: scripted
        model: scripted-v1
        parameters: {temperature: 0}
        scripted:
          chunkDelayMs: 120
          chunkWords: 3
          defaultReply: "You said: {message}"
          rules:
            - pattern: "(?i)capital of france"
              reply: "The capital of France is Paris."

Every problem is raised as a :class:`ManifestError` that names the file, the dotted
field path and, where known, the line, so a user can fix a manifest without reading
this module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from google.protobuf.json_format import MessageToDict
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from polyfleet.v1 import agent_pb2

__all__ = [
    "API_VERSION",
    "ManifestError",
    "agent_to_manifest",
    "load_manifests",
    "parse_manifests",
]

API_VERSION = "polyfleet/v1"
SCRIPTED_PROVIDER = "scripted"

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_INT32_MAX = 2**31 - 1
# Kinds that are part of the format but not implemented by this version of the CLI.
_FUTURE_KINDS = frozenset({"Workflow"})


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


# --- schema ---------------------------------------------------------------------------


class _Schema(BaseModel):
    # Strict so YAML's native types are taken as written: `chunkWords: "3"` is an error,
    # not a silent coercion. camelCase aliases match Kubernetes conventions.
    model_config = ConfigDict(
        extra="forbid", strict=True, alias_generator=to_camel, populate_by_name=True
    )


class _ScriptedRule(_Schema):
    pattern: str
    reply: str = ""
    error: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _reply_or_error(self) -> _ScriptedRule:
        if bool(self.reply) == bool(self.error):
            raise ValueError("set exactly one of reply and error")
        return self


class _ScriptedModel(_Schema):
    rules: list[_ScriptedRule] = Field(default_factory=list)
    default_reply: str = ""
    chunk_delay_ms: int = Field(default=0, ge=0, le=_INT32_MAX)
    # 0 means "the provider's default" (3 words), matching the proto.
    chunk_words: int = Field(default=0, ge=0, le=_INT32_MAX)


class _ModelConfig(_Schema):
    provider: str = Field(min_length=1)
    model: str = ""
    parameters: dict[str, JsonValue] | None = None
    scripted: _ScriptedModel | None = None


class _Metadata(_Schema):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME_RE.fullmatch(value):
            raise ValueError(
                f"invalid name {value!r}: use 1-63 lowercase letters, digits and '-', "
                "starting with a letter"
            )
        return value


class _AgentSpec(_Schema):
    description: str = ""
    instructions: str = ""
    model: _ModelConfig


class _AgentManifest(_Schema):
    api_version: Literal["polyfleet/v1"]
    kind: Literal["Agent"]
    metadata: _Metadata
    spec: _AgentSpec


# --- loading --------------------------------------------------------------------------


def load_manifests(path: str | Path) -> list[agent_pb2.Agent]:
    """Load every manifest in a YAML file.

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
    return parse_manifests(text, path)


def parse_manifests(text: str, path: str | Path = "<string>") -> list[agent_pb2.Agent]:
    """Parse manifests from YAML text.

    Args:
        text: YAML with one or more documents separated by ``---``.
        path: Name of the source, used in error messages.

    Returns:
        One message per non-empty YAML document, in order.

    Raises:
        ManifestError: The text is not valid YAML, holds no manifest, or a manifest is
            invalid.

    """
    manifests = [_to_agent(path, data, node) for data, node in _documents(text, path)]
    if not manifests:
        raise ManifestError(path, None, "no manifests found")
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
        manifest = _AgentManifest.model_validate(data)
    except ValidationError as exc:
        errors = [_from_pydantic(path, data, node, e) for e in exc.errors()]
        first, *rest = errors
        raise ManifestError(
            first.path, first.field, first.message, line=first.line, additional=rest
        ) from None
    _check_provider(path, manifest, node)
    return _agent_message(manifest)


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


def _check_provider(path: str | Path, manifest: _AgentManifest, node: yaml.Node) -> None:
    # Cross-field rule that pydantic would report without a precise field path.
    model = manifest.spec.model
    is_scripted = model.provider == SCRIPTED_PROVIDER
    problem = None
    if is_scripted and model.scripted is None:
        problem = "field required when provider is 'scripted'"
    elif not is_scripted and model.scripted is not None:
        problem = "only allowed when provider is 'scripted'"
    if problem is not None:
        loc = ("spec", "model", "scripted")
        raise ManifestError(path, _dotted(loc), problem, line=_line_of(node, loc))


def _from_pydantic(
    path: str | Path, data: Any, node: yaml.Node, error: ErrorDetails
) -> ManifestError:
    loc = _data_loc(error["loc"], data)
    message = _error_message(error)
    if "[key]" in error["loc"]:
        # YAML 1.1 reads unquoted on/off/yes/no as booleans, a classic trap in mapping keys.
        message = f"keys must be strings, got {error.get('input')!r} (quote the key)"
    return ManifestError(path, _dotted(loc), message, line=_line_of(node, loc))


def _data_loc(loc: tuple[int | str, ...], data: Any) -> tuple[int | str, ...]:
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


# --- conversion -----------------------------------------------------------------------


def _agent_message(manifest: _AgentManifest) -> agent_pb2.Agent:
    spec = manifest.spec
    agent = agent_pb2.Agent(
        name=manifest.metadata.name,
        description=spec.description,
        instructions=spec.instructions,
        labels=manifest.metadata.labels,
        model=agent_pb2.ModelConfig(provider=spec.model.provider, model=spec.model.model),
    )
    if spec.model.parameters is not None:
        agent.model.parameters.update(spec.model.parameters)
    scripted = spec.model.scripted
    if scripted is not None:
        agent.model.scripted.CopyFrom(
            agent_pb2.ScriptedModel(
                rules=[
                    agent_pb2.ScriptedRule(pattern=r.pattern, reply=r.reply, error=r.error)
                    for r in scripted.rules
                ],
                default_reply=scripted.default_reply,
                chunk_delay_ms=scripted.chunk_delay_ms,
                chunk_words=scripted.chunk_words,
            )
        )
    return agent


def agent_to_manifest(agent: agent_pb2.Agent) -> dict[str, Any]:
    """Render an agent as a manifest mapping, the inverse of :func:`parse_manifests`.

    Server-assigned fields (id, version, timestamps) are left out so the result can be
    applied again.

    Args:
        agent: The agent message.

    Returns:
        A mapping ready for ``yaml.safe_dump``.

    """
    metadata: dict[str, Any] = {"name": agent.name}
    if agent.labels:
        metadata["labels"] = dict(agent.labels)
    model: dict[str, Any] = {"provider": agent.model.provider}
    if agent.model.model:
        model["model"] = agent.model.model
    if agent.model.HasField("parameters"):
        model["parameters"] = MessageToDict(agent.model.parameters)
    if agent.model.HasField("scripted"):
        model["scripted"] = _scripted_to_manifest(agent.model.scripted)
    spec: dict[str, Any] = {}
    if agent.description:
        spec["description"] = agent.description
    if agent.instructions:
        spec["instructions"] = agent.instructions
    spec["model"] = model
    return {"apiVersion": API_VERSION, "kind": "Agent", "metadata": metadata, "spec": spec}


def _scripted_to_manifest(scripted: agent_pb2.ScriptedModel) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if scripted.chunk_delay_ms:
        result["chunkDelayMs"] = scripted.chunk_delay_ms
    if scripted.chunk_words:
        result["chunkWords"] = scripted.chunk_words
    if scripted.default_reply:
        result["defaultReply"] = scripted.default_reply
    rules: list[dict[str, str]] = []
    for rule in scripted.rules:
        entry = {"pattern": rule.pattern}
        if rule.reply:
            entry["reply"] = rule.reply
        if rule.error:
            entry["error"] = rule.error
        rules.append(entry)
    if rules:
        result["rules"] = rules
    return result
