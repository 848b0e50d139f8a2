"""Validation of API requests, naming the offending field."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import jsonschema
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from orchestrator.errors import InvalidArgumentError
from polyfleet.dsl import InvalidDocumentError, load_document, validate_document
from polyfleet.quoting import quote
from polyfleet.structs import struct_to_dict
from polyfleet.v1 import agent_execution_pb2, agent_pb2, workflow_pb2

AGENT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
# Tool names as model providers accept them (OpenAI: ^[a-zA-Z0-9_-]{1,64}$).
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_REF = re.compile(r"\$\{([^}]*)\}")
GRAPH_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
SUPPORTED_PROVIDERS = ("scripted", "openai", "anthropic", "ollama")
MAX_REQUEST_ID_CHARS = 200
MAX_STEPS = 1000
MAX_MODEL_ATTEMPTS = 10
# The ranges google.protobuf.Timestamp and Duration define; values outside them make the
# protobuf runtime raise (ValueError, OverflowError), which must never reach the edge.
_MIN_TIMESTAMP_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
_MAX_TIMESTAMP_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_DURATION_SECONDS = 315_576_000_000  # about 10,000 years
_MAX_NANOS = 999_999_999


def timestamp_nanos(value: Timestamp, field: str) -> int:
    """Unix nanoseconds of a request's Timestamp, checked against protobuf's range.

    Raises:
        InvalidArgumentError: ``seconds`` or ``nanos`` is out of range, naming which.
    """
    if not _MIN_TIMESTAMP_SECONDS <= value.seconds <= _MAX_TIMESTAMP_SECONDS:
        raise InvalidArgumentError(
            f"{field}.seconds",
            f"{value.seconds} is outside {_MIN_TIMESTAMP_SECONDS}..{_MAX_TIMESTAMP_SECONDS} "
            "(0001-01-01 to 9999-12-31)",
        )
    if not 0 <= value.nanos <= _MAX_NANOS:
        raise InvalidArgumentError(f"{field}.nanos", f"{value.nanos} is outside 0..{_MAX_NANOS}")
    return value.seconds * 1_000_000_000 + value.nanos


def duration_seconds(value: Duration, field: str) -> float:
    """Seconds of a request's Duration, checked against protobuf's range.

    Raises:
        InvalidArgumentError: ``seconds`` or ``nanos`` is out of range, or their signs
            differ, naming which.
    """
    seconds, nanos = value.seconds, value.nanos
    if not -_MAX_DURATION_SECONDS <= seconds <= _MAX_DURATION_SECONDS:
        raise InvalidArgumentError(
            f"{field}.seconds", f"{seconds} is outside ±{_MAX_DURATION_SECONDS}"
        )
    if not -_MAX_NANOS <= nanos <= _MAX_NANOS:
        raise InvalidArgumentError(f"{field}.nanos", f"{nanos} is outside ±{_MAX_NANOS}")
    if (seconds > 0 > nanos) or (seconds < 0 < nanos):
        raise InvalidArgumentError(f"{field}.nanos", "must have the sign of seconds")
    return seconds + nanos / 1_000_000_000


def validate_agent(agent: agent_pb2.Agent, field: str = "agent") -> None:
    """Check an agent definition before it is stored.

    Args:
        agent: The definition.
        field: Field path of the agent in the request, for error messages.

    Raises:
        InvalidArgumentError: Naming the first invalid field.
    """
    if not agent.name:
        raise InvalidArgumentError(f"{field}.name", "must not be empty")
    if not AGENT_NAME.match(agent.name):
        raise InvalidArgumentError(
            f"{field}.name",
            f"{quote(agent.name)} must be 1-63 lowercase letters, digits or '-', "
            "starting with a letter",
        )
    secrets = set(agent.secrets)
    for i, name in enumerate(agent.secrets):
        if not SECRET_NAME.match(name):
            raise InvalidArgumentError(
                f"{field}.secrets[{i}]", f"{quote(name)} is not a valid name"
            )
    # A bring-your-own graph brings its own model; a model is then optional.
    _validate_model(agent.model, f"{field}.model", secrets, required=not agent.graph)
    _validate_mcp_servers(agent.mcp_servers, f"{field}.mcp_servers", secrets)
    _unique((s.name for s in agent.sub_agents), f"{field}.sub_agents", "sub-agent")
    for i, sub in enumerate(agent.sub_agents):
        where = f"{field}.sub_agents[{i}]"
        if not TOOL_NAME.match(sub.name):
            raise InvalidArgumentError(
                f"{where}.name", f"{quote(sub.name)} must match {TOOL_NAME.pattern}"
            )
        if not sub.description:
            raise InvalidArgumentError(f"{where}.description", "must not be empty")
        if sub.HasField("model"):
            _validate_model(sub.model, f"{where}.model", secrets, required=True)
        _validate_mcp_servers(sub.mcp_servers, f"{where}.mcp_servers", secrets)
    if agent.graph and not GRAPH_REF.match(agent.graph):
        raise InvalidArgumentError(f"{field}.graph", "must look like 'package.module:attribute'")
    if agent.HasField("output_schema"):
        try:
            jsonschema.Draft202012Validator.check_schema(struct_to_dict(agent.output_schema))
        except jsonschema.SchemaError as err:
            raise InvalidArgumentError(
                f"{field}.output_schema", f"not a valid JSON Schema: {err.message}"
            ) from None
    if not 0 <= agent.limits.max_steps <= MAX_STEPS:
        raise InvalidArgumentError(f"{field}.limits.max_steps", f"must be in 0..{MAX_STEPS}")
    if duration_seconds(agent.limits.timeout, f"{field}.limits.timeout") < 0:
        raise InvalidArgumentError(f"{field}.limits.timeout", "must not be negative")


def _validate_model(
    model: agent_pb2.ModelConfig, field: str, secrets: set[str], *, required: bool
) -> None:
    provider = model.provider
    if not provider:
        if required:
            raise InvalidArgumentError(f"{field}.provider", "must not be empty")
        return
    if provider not in SUPPORTED_PROVIDERS:
        raise InvalidArgumentError(
            f"{field}.provider",
            f"unknown provider {quote(provider)} (supported: {', '.join(SUPPORTED_PROVIDERS)})",
        )
    if provider == "scripted":
        _validate_scripted(model, field)
    elif not model.model:
        raise InvalidArgumentError(
            f"{field}.model", f"provider {quote(provider)} needs a model name"
        )
    if model.base_url and not re.match(r"^https?://[^\s/]+", model.base_url):
        raise InvalidArgumentError(f"{field}.base_url", "must be an http(s) URL")
    if model.api_key_secret and model.api_key_secret not in secrets:
        raise InvalidArgumentError(
            f"{field}.api_key_secret",
            f"secret {quote(model.api_key_secret)} is not declared in the agent's secrets",
        )
    if not 0 <= model.retry.max_attempts <= MAX_MODEL_ATTEMPTS:
        raise InvalidArgumentError(
            f"{field}.retry.max_attempts", f"must be in 0..{MAX_MODEL_ATTEMPTS}"
        )
    pricing = model.pricing
    if pricing.input_per_million_tokens < 0 or pricing.output_per_million_tokens < 0:
        raise InvalidArgumentError(f"{field}.pricing", "prices must not be negative")


def _validate_scripted(model: agent_pb2.ModelConfig, field: str) -> None:
    scripted = model.scripted
    if not model.HasField("scripted") or not (scripted.rules or scripted.default_reply):
        raise InvalidArgumentError(
            f"{field}.scripted", "the scripted provider needs rules or a default_reply"
        )
    if scripted.chunk_delay_ms < 0 or scripted.chunk_delay_ms > 10_000:
        raise InvalidArgumentError(f"{field}.scripted.chunk_delay_ms", "must be in 0..10000")
    if scripted.chunk_words < 0:
        raise InvalidArgumentError(f"{field}.scripted.chunk_words", "must not be negative")
    for i, rule in enumerate(scripted.rules):
        where = f"{field}.scripted.rules[{i}]"
        if not rule.pattern:
            raise InvalidArgumentError(f"{where}.pattern", "must not be empty")
        try:
            re.compile(rule.pattern)
        except re.error as err:
            raise InvalidArgumentError(
                f"{where}.pattern", f"invalid regular expression: {err}"
            ) from None
        if not rule.reply and not rule.error:
            raise InvalidArgumentError(where, "needs a reply or an error")
        if rule.HasField("tool_call") and not TOOL_NAME.match(rule.tool_call.name):
            raise InvalidArgumentError(f"{where}.tool_call.name", "must be a tool name")


def _validate_mcp_servers(
    servers: Iterable[agent_pb2.McpServer], field: str, secrets: set[str]
) -> None:
    servers = list(servers)
    _unique((s.name for s in servers), field, "MCP server")
    for i, server in enumerate(servers):
        where = f"{field}[{i}]"
        if not TOOL_NAME.match(server.name):
            raise InvalidArgumentError(
                f"{where}.name", f"{quote(server.name)} must match {TOOL_NAME.pattern}"
            )
        transport = server.WhichOneof("transport")
        if transport is None:
            raise InvalidArgumentError(where, "needs a stdio or an http transport")
        if transport == "stdio":
            if not server.stdio.command:
                raise InvalidArgumentError(f"{where}.stdio.command", "must not be empty")
            _check_refs(server.stdio.env, f"{where}.stdio.env", secrets)
        else:
            if not re.match(r"^https?://[^\s/]+", server.http.url):
                raise InvalidArgumentError(f"{where}.http.url", "must be an http(s) URL")
            _check_refs(server.http.headers, f"{where}.http.headers", secrets)


def _check_refs(values: Mapping[str, str], field: str, secrets: set[str]) -> None:
    for key, value in values.items():
        for name in SECRET_REF.findall(value):
            if name not in secrets:
                raise InvalidArgumentError(
                    f"{field}[{key}]",
                    f"refers to {quote('${' + name + '}')}, which is not in the agent's secrets",
                )


def _unique(names: Iterable[str], field: str, what: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise InvalidArgumentError(f"{field}[{i}].name", f"duplicate {what} name {quote(name)}")
        seen.add(name)


def validate_create_agent_execution(
    request: agent_execution_pb2.CreateAgentExecutionRequest,
    max_message_chars: int,
) -> None:
    """Check a Create request for an agent execution.

    Raises:
        InvalidArgumentError: Naming the first invalid field.
    """
    execution = request.execution
    if not execution.agent:
        raise InvalidArgumentError("execution.agent", "must not be empty")
    if not execution.message.strip():
        raise InvalidArgumentError("execution.message", "must not be empty")
    if len(execution.message) > max_message_chars:
        raise InvalidArgumentError(
            "execution.message",
            f"is {len(execution.message)} characters; the limit is {max_message_chars} "
            "(POLYFLEET_MAX_MESSAGE_CHARS)",
        )
    validate_priority(execution.priority, "execution.priority")
    if len(request.request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidArgumentError(
            "request_id", f"is longer than {MAX_REQUEST_ID_CHARS} characters"
        )


def validate_priority(priority: int, field: str) -> None:
    """Priorities are 1 (highest) to 5; 0 means the default, 3."""
    if not 0 <= priority <= 5:
        raise InvalidArgumentError(field, f"{priority} is not in 1 (highest) .. 5")


def validate_workflow(
    definition: workflow_pb2.Workflow, known_agents: Iterable[str], field: str = "workflow"
) -> None:
    """Check a workflow resource and its Serverless Workflow document.

    Raises:
        InvalidArgumentError: Naming the field, or the JSON pointer of the first problem
            in the document (e.g. ``workflow.document/do/2/callApi/with/endpoint``).
    """
    if not AGENT_NAME.match(definition.name):
        raise InvalidArgumentError(
            f"{field}.name",
            f"{quote(definition.name)} must be 1-63 lowercase letters, digits or '-', "
            "starting with a letter",
        )
    if not definition.document.strip():
        raise InvalidArgumentError(f"{field}.document", "must not be empty")
    try:
        document = load_document(definition.document)
    except InvalidDocumentError as err:
        first = err.problems[0] if err.problems else None
        pointer = first.pointer if first else ""
        raise InvalidArgumentError(f"{field}.document{pointer}", str(err)) from None
    problems = validate_document(document, known_agents=set(known_agents))
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InvalidArgumentError(f"{field}.document{first.pointer}", first.message + more)
