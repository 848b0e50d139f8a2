"""Conversion between validated manifests and ``polyfleet.v1.Agent`` messages."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct
from pydantic import JsonValue

from polyfleet.manifest.schema import (
    API_VERSION,
    AgentManifest,
    McpServer,
    ModelConfig,
    ScriptedModel,
    SubAgent,
)
from polyfleet.structs import struct_to_dict
from polyfleet.v1 import agent_pb2

_RELATIVE_PREFIXES = ("./", "../")

# --- manifest -> message ------------------------------------------------------------------


def agent_message(manifest: AgentManifest) -> agent_pb2.Agent:
    """Build the Agent message a validated manifest describes.

    Args:
        manifest: The manifest, already checked by the schema and the rules.

    Returns:
        The message, without server-assigned fields.

    """
    spec = manifest.spec
    agent = agent_pb2.Agent(
        name=manifest.metadata.name,
        description=spec.description,
        instructions=spec.instructions,
        labels=manifest.metadata.labels,
        model=_model_message(spec.model),
        secrets=spec.secrets,
        mcp_servers=[_server_message(server) for server in spec.mcp_servers],
        sub_agents=[_sub_agent_message(sub) for sub in spec.sub_agents],
        graph=spec.graph,
        runner_queue=spec.runner_queue or "",
    )
    if spec.output_schema is not None:
        _fill_struct(agent.output_schema, spec.output_schema)
    if spec.limits is not None:
        agent.limits.SetInParent()
        agent.limits.max_steps = spec.limits.max_steps or 0
        if spec.limits.timeout is not None:
            agent.limits.timeout.FromTimedelta(spec.limits.timeout)
    return agent


def _model_message(model: ModelConfig) -> agent_pb2.ModelConfig:
    message = agent_pb2.ModelConfig(
        provider=model.provider,
        model=model.model,
        base_url=model.base_url,
        api_key_secret=model.api_key_secret,
    )
    if model.parameters is not None:
        _fill_struct(message.parameters, model.parameters)
    if model.pricing is not None:
        message.pricing.CopyFrom(
            agent_pb2.ModelPricing(
                input_per_million_tokens=model.pricing.input_per_million_tokens,
                output_per_million_tokens=model.pricing.output_per_million_tokens,
                currency=model.pricing.currency,
            )
        )
    if model.retry is not None:
        message.retry.SetInParent()
        message.retry.max_attempts = model.retry.max_attempts or 0
        if model.retry.timeout is not None:
            message.retry.timeout.FromTimedelta(model.retry.timeout)
    if model.scripted is not None:
        message.scripted.CopyFrom(_scripted_message(model.scripted))
    return message


def _scripted_message(scripted: ScriptedModel) -> agent_pb2.ScriptedModel:
    message = agent_pb2.ScriptedModel(
        default_reply=scripted.default_reply,
        chunk_delay_ms=scripted.chunk_delay_ms,
        chunk_words=scripted.chunk_words,
    )
    for rule in scripted.rules:
        entry = message.rules.add(pattern=rule.pattern, reply=rule.reply, error=rule.error)
        if rule.tool_call is not None:
            entry.tool_call.name = rule.tool_call.name
            if rule.tool_call.arguments is not None:
                _fill_struct(entry.tool_call.arguments, rule.tool_call.arguments)
    return message


def _server_message(server: McpServer) -> agent_pb2.McpServer:
    message = agent_pb2.McpServer(name=server.name, allowed_tools=server.allowed_tools)
    if server.stdio is not None:
        message.stdio.CopyFrom(
            agent_pb2.McpStdio(
                command=server.stdio.command,
                args=server.stdio.args,
                env=server.stdio.env,
                cwd=server.stdio.cwd,
            )
        )
    if server.http is not None:
        message.http.CopyFrom(agent_pb2.McpHttp(url=server.http.url, headers=server.http.headers))
    return message


def _sub_agent_message(sub: SubAgent) -> agent_pb2.SubAgent:
    message = agent_pb2.SubAgent(
        name=sub.name,
        description=sub.description,
        instructions=sub.instructions,
        mcp_servers=[_server_message(server) for server in sub.mcp_servers],
    )
    if sub.model is not None:
        message.model.CopyFrom(_model_message(sub.model))
    return message


def _fill_struct(struct: Struct, values: Mapping[str, JsonValue]) -> None:
    # SetInParent first: an empty mapping is still "set" (e.g. `arguments: {}`).
    struct.SetInParent()
    struct.update(values)


# --- relative paths -----------------------------------------------------------------------


def resolve_relative_paths(agent: agent_pb2.Agent, base_dir: str | Path) -> None:
    """Make ``./`` and ``../`` paths of stdio MCP servers absolute, in place.

    A runner starts MCP servers in its own working directory, which has nothing to do
    with where the manifest lives; paths written relative to the manifest are therefore
    resolved when the manifest is loaded. ``command``, each of ``args`` and ``cwd`` are
    resolved when they start with ``./`` or ``../`` (or are ``.`` or ``..``); anything
    else (``python3``, ``-m``, ``{python}``, absolute paths) is left as written.

    Args:
        agent: The agent whose MCP servers, and its sub-agents' servers, are updated.
        base_dir: Directory the relative paths are relative to, normally the manifest's.

    """
    base = Path(base_dir).absolute()
    servers = [*agent.mcp_servers, *(s for sub in agent.sub_agents for s in sub.mcp_servers)]
    for server in servers:
        if server.WhichOneof("transport") != "stdio":
            continue
        stdio = server.stdio
        stdio.command = _resolved(stdio.command, base)
        stdio.args[:] = [_resolved(arg, base) for arg in stdio.args]
        stdio.cwd = _resolved(stdio.cwd, base)


def _resolved(value: str, base: Path) -> str:
    if value in {".", ".."} or value.startswith(_RELATIVE_PREFIXES):
        return os.path.normpath(base / value)
    return value


# --- message -> manifest ------------------------------------------------------------------


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
    spec: dict[str, Any] = {}
    if agent.description:
        spec["description"] = agent.description
    if agent.instructions:
        spec["instructions"] = agent.instructions
    spec["model"] = _model_to_manifest(agent.model)
    if agent.secrets:
        spec["secrets"] = list(agent.secrets)
    if agent.mcp_servers:
        spec["mcpServers"] = [_server_to_manifest(s) for s in agent.mcp_servers]
    if agent.sub_agents:
        spec["subAgents"] = [_sub_agent_to_manifest(s) for s in agent.sub_agents]
    if agent.HasField("output_schema"):
        spec["outputSchema"] = _struct_to_manifest(agent.output_schema)
    if agent.HasField("limits"):
        limits: dict[str, Any] = {}
        if agent.limits.max_steps:
            limits["maxSteps"] = agent.limits.max_steps
        if agent.limits.HasField("timeout"):
            limits["timeout"] = _duration_to_manifest(agent.limits.timeout)
        spec["limits"] = limits
    if agent.graph:
        spec["graph"] = agent.graph
    if agent.runner_queue:
        spec["runnerQueue"] = agent.runner_queue
    return {"apiVersion": API_VERSION, "kind": "Agent", "metadata": metadata, "spec": spec}


def _model_to_manifest(model: agent_pb2.ModelConfig) -> dict[str, Any]:
    result: dict[str, Any] = {"provider": model.provider}
    if model.model:
        result["model"] = model.model
    if model.base_url:
        result["baseUrl"] = model.base_url
    if model.api_key_secret:
        result["apiKeySecret"] = model.api_key_secret
    if model.HasField("parameters"):
        result["parameters"] = _struct_to_manifest(model.parameters)
    if model.HasField("pricing"):
        pricing: dict[str, Any] = {
            "inputPerMillionTokens": model.pricing.input_per_million_tokens,
            "outputPerMillionTokens": model.pricing.output_per_million_tokens,
        }
        if model.pricing.currency:
            pricing["currency"] = model.pricing.currency
        result["pricing"] = pricing
    if model.HasField("retry"):
        retry: dict[str, Any] = {}
        if model.retry.max_attempts:
            retry["maxAttempts"] = model.retry.max_attempts
        if model.retry.HasField("timeout"):
            retry["timeout"] = _duration_to_manifest(model.retry.timeout)
        result["retry"] = retry
    if model.HasField("scripted"):
        result["scripted"] = _scripted_to_manifest(model.scripted)
    return result


def _scripted_to_manifest(scripted: agent_pb2.ScriptedModel) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if scripted.chunk_delay_ms:
        result["chunkDelayMs"] = scripted.chunk_delay_ms
    if scripted.chunk_words:
        result["chunkWords"] = scripted.chunk_words
    if scripted.default_reply:
        result["defaultReply"] = scripted.default_reply
    rules: list[dict[str, Any]] = []
    for rule in scripted.rules:
        entry: dict[str, Any] = {"pattern": rule.pattern}
        if rule.HasField("tool_call"):
            call: dict[str, Any] = {"name": rule.tool_call.name}
            if rule.tool_call.HasField("arguments"):
                call["arguments"] = _struct_to_manifest(rule.tool_call.arguments)
            entry["toolCall"] = call
        if rule.reply:
            entry["reply"] = rule.reply
        if rule.error:
            entry["error"] = rule.error
        rules.append(entry)
    if rules:
        result["rules"] = rules
    return result


def _server_to_manifest(server: agent_pb2.McpServer) -> dict[str, Any]:
    result: dict[str, Any] = {"name": server.name}
    transport = server.WhichOneof("transport")
    if transport == "stdio":
        stdio: dict[str, Any] = {"command": server.stdio.command}
        if server.stdio.args:
            stdio["args"] = list(server.stdio.args)
        if server.stdio.env:
            stdio["env"] = dict(sorted(server.stdio.env.items()))
        if server.stdio.cwd:
            stdio["cwd"] = server.stdio.cwd
        result["stdio"] = stdio
    elif transport == "http":
        http: dict[str, Any] = {"url": server.http.url}
        if server.http.headers:
            http["headers"] = dict(sorted(server.http.headers.items()))
        result["http"] = http
    if server.allowed_tools:
        result["allowedTools"] = list(server.allowed_tools)
    return result


def _sub_agent_to_manifest(sub: agent_pb2.SubAgent) -> dict[str, Any]:
    result: dict[str, Any] = {"name": sub.name, "description": sub.description}
    if sub.instructions:
        result["instructions"] = sub.instructions
    if sub.mcp_servers:
        result["mcpServers"] = [_server_to_manifest(s) for s in sub.mcp_servers]
    if sub.HasField("model"):
        result["model"] = _model_to_manifest(sub.model)
    return result


def _struct_to_manifest(struct: Struct) -> dict[str, Any]:
    # struct_to_dict gives `maxItems: 3` back as 3, not 3.0.
    tidied: dict[str, Any] = _sorted_keys(struct_to_dict(struct))
    return tidied


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    if isinstance(value, dict):
        # Struct is a map without a stable order: sorted keys make the output reproducible.
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    return value


def _duration_to_manifest(duration: Duration) -> str:
    # Whole nanoseconds, written without an exponent so parse_duration reads it back.
    nanos = duration.seconds * 1_000_000_000 + duration.nanos
    whole, fraction = divmod(nanos, 1_000_000_000)
    text = f"{whole}.{fraction:09d}".rstrip("0").rstrip(".")
    return f"{text}s"
