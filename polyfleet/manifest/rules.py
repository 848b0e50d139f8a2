"""Rules of an Agent manifest that span fields: secrets, unique names, providers, schemas.

Each rule yields a :data:`Problem`: the path of the offending field as the YAML document
spells it (camelCase keys, list indexes) and what is wrong, so the loader can report the
exact field and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import jsonschema
from pydantic import JsonValue

from polyfleet.manifest.schema import (
    SCRIPTED_PROVIDER,
    SECRET_NAME_RE,
    AgentManifest,
    McpServer,
    ModelConfig,
)

Loc = tuple[int | str, ...]
Problem = tuple[Loc, str]

PYTHON_PLACEHOLDER = "{python}"
SECRET_REF_RE = re.compile(r"\$\{([^}]*)\}")
_PLACEHOLDER_RE = re.compile(r"\{[^{}]*\}")
# Names of environment variables, headers and model parameters that carry credentials.
# Such values must come from a secret, so a key never lands in a manifest or the store.
_CREDENTIAL_NAME_RE = re.compile(
    r"(?i)(?:^|[_-])(?:api[_-]?key|secret|password|passwd|token|credentials?)$"
)
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def problems(manifest: AgentManifest) -> list[Problem]:
    """Check the rules that pydantic's per-field validation cannot.

    Args:
        manifest: A manifest that passed schema validation.

    Returns:
        Every problem found, in document order; empty when the manifest is valid.

    """
    spec = manifest.spec
    secrets = frozenset(spec.secrets)
    found = list(_duplicates(spec.secrets, ("spec", "secrets"), "secret"))
    found.extend(_model(spec.model, ("spec", "model"), secrets))
    found.extend(_servers(spec.mcp_servers, ("spec", "mcpServers"), secrets))
    names = [sub.name for sub in spec.sub_agents]
    found.extend(_duplicates(names, ("spec", "subAgents"), "sub-agent", key="name"))
    for index, sub in enumerate(spec.sub_agents):
        where: Loc = ("spec", "subAgents", index)
        if sub.model is not None:
            found.extend(_model(sub.model, (*where, "model"), secrets))
        found.extend(_servers(sub.mcp_servers, (*where, "mcpServers"), secrets))
    if spec.output_schema is not None:
        found.extend(_json_schema(spec.output_schema, ("spec", "outputSchema")))
    return found


def _duplicates(
    names: Sequence[str], loc: Loc, what: str, *, key: str | None = None
) -> Iterator[Problem]:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            where: Loc = (*loc, index, key) if key else (*loc, index)
            yield where, f"duplicate {what} name {name!r}"
        seen.add(name)


def _model(model: ModelConfig, loc: Loc, secrets: frozenset[str]) -> Iterator[Problem]:
    provider = model.provider
    is_scripted = provider == SCRIPTED_PROVIDER
    if is_scripted and model.scripted is None:
        yield (*loc, "scripted"), "field required when provider is 'scripted'"
    elif not is_scripted and model.scripted is not None:
        yield (*loc, "scripted"), "only allowed when provider is 'scripted'"
    if not is_scripted and not model.model:
        yield (*loc, "model"), f"field required when provider is {provider!r}"
    if is_scripted and model.base_url:
        yield (*loc, "baseUrl"), "not used by the scripted provider"
    if is_scripted and model.api_key_secret:
        yield (*loc, "apiKeySecret"), "not used by the scripted provider"
    if model.api_key_secret and model.api_key_secret not in secrets:
        yield (
            (*loc, "apiKeySecret"),
            f"secret {model.api_key_secret!r} is not declared in spec.secrets",
        )
    for key in model.parameters or {}:
        if _CREDENTIAL_NAME_RE.search(key):
            yield (
                (*loc, "parameters", key),
                "credentials never go in a manifest: declare a secret in spec.secrets and "
                "name it in apiKeySecret",
            )
    if model.scripted is not None:
        for index, rule in enumerate(model.scripted.rules):
            if rule.tool_call is not None and rule.error:
                yield (
                    (*loc, "scripted", "rules", index, "toolCall"),
                    "a rule with toolCall needs a reply (which may use {tool_result})",
                )


def _servers(servers: Sequence[McpServer], loc: Loc, secrets: frozenset[str]) -> Iterator[Problem]:
    yield from _duplicates([s.name for s in servers], loc, "MCP server", key="name")
    for index, server in enumerate(servers):
        where: Loc = (*loc, index)
        yield from _duplicates(server.allowed_tools, (*where, "allowedTools"), "tool")
        if server.stdio is not None:
            stdio = server.stdio
            at: Loc = (*where, "stdio")
            yield from _command(stdio.command, (*at, "command"))
            unresolved = [("command",), *(("args", i) for i in range(len(stdio.args))), ("cwd",)]
            values = [stdio.command, *stdio.args, stdio.cwd]
            for part, value in zip(unresolved, values, strict=True):
                yield from _no_secret_refs(value, (*at, *part))
            yield from _secret_values(stdio.env, (*at, "env"), secrets, _is_credential_env)
        if server.http is not None:
            at = (*where, "http")
            yield from _no_secret_refs(server.http.url, (*at, "url"))
            yield from _secret_values(
                server.http.headers, (*at, "headers"), secrets, _is_credential_header
            )


def _command(command: str, loc: Loc) -> Iterator[Problem]:
    for placeholder in _PLACEHOLDER_RE.findall(command):
        if placeholder != PYTHON_PLACEHOLDER:
            yield (
                loc,
                f"unknown placeholder {placeholder} (the only one is {PYTHON_PLACEHOLDER}, "
                "the runner's own Python interpreter)",
            )
            return
    if PYTHON_PLACEHOLDER in command and command != PYTHON_PLACEHOLDER:
        yield loc, f"use {PYTHON_PLACEHOLDER} alone as the command and put the rest in args"


def _no_secret_refs(value: str, loc: Loc) -> Iterator[Problem]:
    if SECRET_REF_RE.search(value):
        yield loc, "secret references (${NAME}) are resolved only in stdio.env and http.headers"


def _secret_values(
    values: Mapping[str, str],
    loc: Loc,
    secrets: frozenset[str],
    is_credential: Callable[[str], bool],
) -> Iterator[Problem]:
    for key, value in values.items():
        names = SECRET_REF_RE.findall(value)
        for name in names:
            if not SECRET_NAME_RE.fullmatch(name):
                yield (*loc, key), f"invalid secret reference ${{{name}}}"
            elif name not in secrets:
                yield (*loc, key), f"refers to ${{{name}}}, which is not declared in spec.secrets"
        if not names and value and is_credential(key):
            yield (
                (*loc, key),
                "looks like a literal credential: declare a secret in spec.secrets and write "
                "${NAME} here, so its value stays on the runner",
            )


def _is_credential_env(name: str) -> bool:
    return bool(_CREDENTIAL_NAME_RE.search(name))


def _is_credential_header(name: str) -> bool:
    return name.lower() in _CREDENTIAL_HEADERS or bool(_CREDENTIAL_NAME_RE.search(name))


def _json_schema(schema: Mapping[str, JsonValue], loc: Loc) -> Iterable[Problem]:
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [((*loc, *exc.path), f"not a valid JSON Schema: {exc.message}")]
    return []
