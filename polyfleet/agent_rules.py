"""The one rule set of an agent definition, over the ``polyfleet.v1.Agent`` message.

The API is the authority: ``orchestrator.validation`` rejects a definition with a problem
here as INVALID_ARGUMENT, naming each field. The CLI's manifest layer
(:mod:`polyfleet.manifest.rules`) calls the same rules before it sends anything, and only
maps each path to the manifest's field and YAML line.

A problem is ``(path, message)``. The path is in proto terms: field names as the proto
spells them (``mcp_servers``), list indexes as ints, and map keys, ``Struct`` keys (model
parameters, output schema) as :class:`Key`, so a reader can tell a field from a key.
No message quotes a field's value where that value may be a credential.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import jsonschema
from google.protobuf.duration_pb2 import Duration

from polyfleet.contract import task_queue_problem
from polyfleet.quoting import quote
from polyfleet.structs import struct_to_dict
from polyfleet.v1 import agent_pb2


class Key(str):
    """A map or ``Struct`` key in a problem's path (rendered ``[key]``, never camelCased)."""

    __slots__ = ()


Path = tuple[str | int, ...]
Problem = tuple[Path, str]

AGENT_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
# Tool names as model providers accept them (OpenAI: ^[a-zA-Z0-9_-]{1,64}$).
TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# Secret names are environment-variable names.
SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_REF_RE = re.compile(r"\$\{([^}]*)\}")
GRAPH_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
HTTP_URL_RE = re.compile(r"^https?://[^\s/]+")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
SCRIPTED_PROVIDER = "scripted"
PROVIDERS = (SCRIPTED_PROVIDER, "openai", "anthropic", "ollama")
PYTHON_PLACEHOLDER = "{python}"
MAX_STEPS = 1000
MAX_MODEL_ATTEMPTS = 10
MAX_CHUNK_DELAY_MS = 10_000
MAX_DURATION_SECONDS = 365 * 24 * 3600
_MAX_NANOS = 999_999_999
_PLACEHOLDER_RE = re.compile(r"\{[^{}]*\}")
# Names of environment variables, headers and model parameters that carry credentials.
# Such values must come from a secret, so a key never lands in a definition or the store.
_CREDENTIAL_NAME_RE = re.compile(
    r"(?i)(?:^|[_-])(?:api[_-]?key|secret|password|passwd|token|credentials?)$"
)
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
LITERAL_CREDENTIAL = (
    "looks like a literal credential: declare a secret in the agent's secrets and write "
    "${NAME} here, so its value stays on the runner"
)


def agent_problems(agent: agent_pb2.Agent) -> list[Problem]:
    """Every problem of an agent definition, in field order.

    Server-assigned fields (id, version, times) are not checked.

    Args:
        agent: The definition as the API receives it.

    Returns:
        ``(path, message)`` per problem; empty when the definition is valid.

    """
    found: list[Problem] = []
    if not agent.name:
        found.append((("name",), "must not be empty"))
    elif not AGENT_NAME_RE.match(agent.name):
        found.append(
            (
                ("name",),
                f"{quote(agent.name)} must be 1-63 lowercase letters, digits or '-', "
                "starting with a letter",
            )
        )
    for i, name in enumerate(agent.secrets):
        if not SECRET_NAME_RE.match(name):
            found.append(
                (
                    ("secrets", i),
                    f"{quote(name)} is not a valid name: use letters, digits and '_', "
                    "not starting with a digit",
                )
            )
    found.extend(_duplicates(agent.secrets, ("secrets",), "secret"))
    secrets = frozenset(agent.secrets)
    # A bring-your-own graph brings its own model; a model is then optional.
    found.extend(_model(agent.model, ("model",), secrets, required=not agent.graph))
    found.extend(_servers(agent.mcp_servers, ("mcp_servers",), secrets))
    sub_names = [s.name for s in agent.sub_agents]
    found.extend(_duplicates(sub_names, ("sub_agents",), "sub-agent", key="name"))
    for i, sub in enumerate(agent.sub_agents):
        where: Path = ("sub_agents", i)
        if not TOOL_NAME_RE.match(sub.name):
            found.append(((*where, "name"), f"{quote(sub.name)} must match {TOOL_NAME_RE.pattern}"))
        if not sub.description:
            found.append(((*where, "description"), "must not be empty"))
        if sub.HasField("model"):
            found.extend(_model(sub.model, (*where, "model"), secrets, required=True))
        found.extend(_servers(sub.mcp_servers, (*where, "mcp_servers"), secrets))
    if agent.graph and not GRAPH_RE.match(agent.graph):
        found.append(
            (
                ("graph",),
                "must look like 'package.module:attribute', the importable compiled "
                "LangGraph graph on the runner",
            )
        )
    # Unset is the configured default queue; a set one follows the kernel's queue rule.
    queue_problem = task_queue_problem(agent.runner_queue) if agent.runner_queue else ""
    if queue_problem:
        found.append((("runner_queue",), queue_problem))
    if agent.HasField("output_schema"):
        try:
            jsonschema.Draft202012Validator.check_schema(struct_to_dict(agent.output_schema))
        except ValueError as err:
            # A Struct can hold what JSON cannot: NaN and infinite numbers.
            found.append((("output_schema",), f"not valid JSON: {err}"))
        except jsonschema.SchemaError as err:
            inner = tuple(p if isinstance(p, int) else Key(p) for p in err.path)
            found.append((("output_schema", *inner), f"not a valid JSON Schema: {err.message}"))
    if not 0 <= agent.limits.max_steps <= MAX_STEPS:
        found.append((("limits", "max_steps"), f"must be in 0..{MAX_STEPS} (0: the default)"))
    found.extend(_duration(agent.limits.timeout, ("limits", "timeout")))
    return found


def field_path(path: Path, root: str = "") -> str:
    """A problem's path as text: ``mcp_servers[0].stdio.env[API_KEY]``.

    Args:
        path: The problem's path.
        root: Prefix, e.g. ``agent`` for the field of a request.

    Returns:
        The dotted path, map keys and indexes in brackets.

    """
    text = root
    for item in path:
        if isinstance(item, int) or isinstance(item, Key):
            text += f"[{item}]"
        else:
            text += f".{item}" if text else item
    return text


def _duplicates(
    names: Sequence[str], path: Path, what: str, *, key: str | None = None
) -> Iterator[Problem]:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            where: Path = (*path, i, key) if key else (*path, i)
            yield where, f"duplicate {what} name {quote(name)}"
        seen.add(name)


def _model(
    model: agent_pb2.ModelConfig, path: Path, secrets: frozenset[str], *, required: bool
) -> Iterator[Problem]:
    provider = model.provider
    if not provider:
        if required:
            yield (*path, "provider"), "must not be empty"
        return
    if provider not in PROVIDERS:
        yield (
            (*path, "provider"),
            f"unknown provider {quote(provider)} (supported: {', '.join(PROVIDERS)})",
        )
        return
    scripted = provider == SCRIPTED_PROVIDER
    if scripted:
        yield from _scripted(model, (*path, "scripted"))
        if model.base_url:
            yield (*path, "base_url"), "not used by the scripted provider"
        if model.api_key_secret:
            yield (*path, "api_key_secret"), "not used by the scripted provider"
    else:
        if model.HasField("scripted"):
            yield (*path, "scripted"), "only allowed when provider is 'scripted'"
        if not model.model:
            yield (*path, "model"), f"required when provider is {quote(provider)}"
    if model.base_url and not HTTP_URL_RE.match(model.base_url):
        yield (*path, "base_url"), "must be an http(s) URL"
    if model.api_key_secret and model.api_key_secret not in secrets:
        yield (
            (*path, "api_key_secret"),
            f"secret {quote(model.api_key_secret)} is not declared in the agent's secrets",
        )
    for key in model.parameters.fields if model.HasField("parameters") else ():
        if _CREDENTIAL_NAME_RE.search(key):
            yield (
                (*path, "parameters", Key(key)),
                "credentials never go in a definition: declare a secret in the agent's "
                "secrets and name it in api_key_secret",
            )
    pricing = model.pricing
    for name, price in (
        ("input_per_million_tokens", pricing.input_per_million_tokens),
        ("output_per_million_tokens", pricing.output_per_million_tokens),
    ):
        if price < 0:
            yield (*path, "pricing", name), "must not be negative"
    if pricing.currency and not CURRENCY_RE.match(pricing.currency):
        yield (
            (*path, "pricing", "currency"),
            f"invalid currency {quote(pricing.currency)}: use an ISO 4217 code such as USD",
        )
    if not 0 <= model.retry.max_attempts <= MAX_MODEL_ATTEMPTS:
        yield (
            (*path, "retry", "max_attempts"),
            f"must be in 0..{MAX_MODEL_ATTEMPTS} (0: the default)",
        )
    yield from _duration(model.retry.timeout, (*path, "retry", "timeout"))


def _scripted(model: agent_pb2.ModelConfig, path: Path) -> Iterator[Problem]:
    scripted = model.scripted
    if not model.HasField("scripted") or not (scripted.rules or scripted.default_reply):
        yield path, "required when provider is 'scripted': set rules, a default_reply or both"
    if not 0 <= scripted.chunk_delay_ms <= MAX_CHUNK_DELAY_MS:
        yield (*path, "chunk_delay_ms"), f"must be in 0..{MAX_CHUNK_DELAY_MS}"
    if scripted.chunk_words < 0:
        yield (*path, "chunk_words"), "must not be negative"
    for i, rule in enumerate(scripted.rules):
        where: Path = (*path, "rules", i)
        if not rule.pattern:
            yield (*where, "pattern"), "must not be empty"
        else:
            try:
                re.compile(rule.pattern)
            except re.error as err:
                yield (*where, "pattern"), f"invalid regular expression: {err}"
        if bool(rule.reply) == bool(rule.error):
            yield where, "set exactly one of reply and error"
        if rule.HasField("tool_call"):
            if not TOOL_NAME_RE.match(rule.tool_call.name):
                yield (*where, "tool_call", "name"), f"must match {TOOL_NAME_RE.pattern}"
            if rule.error:
                yield (
                    (*where, "tool_call"),
                    "a rule with tool_call needs a reply (which may use {tool_result})",
                )


def _servers(
    servers: Sequence[agent_pb2.McpServer], path: Path, secrets: frozenset[str]
) -> Iterator[Problem]:
    yield from _duplicates([s.name for s in servers], path, "MCP server", key="name")
    for i, server in enumerate(servers):
        where: Path = (*path, i)
        if not TOOL_NAME_RE.match(server.name):
            yield (*where, "name"), f"{quote(server.name)} must match {TOOL_NAME_RE.pattern}"
        yield from _duplicates(server.allowed_tools, (*where, "allowed_tools"), "tool")
        transport = server.WhichOneof("transport")
        if transport is None:
            yield where, "needs a stdio or an http transport"
        elif transport == "stdio":
            stdio = server.stdio
            at: Path = (*where, "stdio")
            if not stdio.command:
                yield (*at, "command"), "must not be empty"
            yield from _command(stdio.command, (*at, "command"))
            plain: list[tuple[Path, str]] = [((*at, "command"), stdio.command)]
            plain += [((*at, "args", j), arg) for j, arg in enumerate(stdio.args)]
            plain.append(((*at, "cwd"), stdio.cwd))
            for part, value in plain:
                yield from _no_secret_refs(value, part)
            yield from _secret_values(stdio.env, (*at, "env"), secrets, _is_credential_env)
        else:
            at = (*where, "http")
            if not HTTP_URL_RE.match(server.http.url):
                yield (*at, "url"), "must be an http(s) URL"
            yield from _no_secret_refs(server.http.url, (*at, "url"))
            yield from _secret_values(
                server.http.headers, (*at, "headers"), secrets, _is_credential_header
            )


def _command(command: str, path: Path) -> Iterator[Problem]:
    for placeholder in _PLACEHOLDER_RE.findall(command):
        if placeholder != PYTHON_PLACEHOLDER:
            yield (
                path,
                f"unknown placeholder {placeholder} (the only one is "
                f"{PYTHON_PLACEHOLDER}, the runner's own Python interpreter)",
            )
            return
    if PYTHON_PLACEHOLDER in command and command != PYTHON_PLACEHOLDER:
        yield path, f"use {PYTHON_PLACEHOLDER} alone as the command and put the rest in args"


def _no_secret_refs(value: str, path: Path) -> Iterator[Problem]:
    if SECRET_REF_RE.search(value):
        yield path, "secret references (${NAME}) are resolved only in stdio.env and http.headers"


def _secret_values(
    values: Mapping[str, str],
    path: Path,
    secrets: frozenset[str],
    is_credential: Callable[[str], bool],
) -> Iterator[Problem]:
    for key in sorted(values):
        value = values[key]
        names = SECRET_REF_RE.findall(value)
        for name in names:
            ref = "${" + name + "}"
            if not SECRET_NAME_RE.fullmatch(name):
                yield (*path, Key(key)), f"invalid secret reference {ref}"
            elif name not in secrets:
                yield (
                    (*path, Key(key)),
                    f"refers to {ref}, which is not declared in the agent's secrets",
                )
        if not names and value and is_credential(key):
            # The value is never quoted: it is the credential.
            yield (*path, Key(key)), LITERAL_CREDENTIAL


def _is_credential_env(name: str) -> bool:
    return bool(_CREDENTIAL_NAME_RE.search(name))


def _is_credential_header(name: str) -> bool:
    return name.lower() in _CREDENTIAL_HEADERS or bool(_CREDENTIAL_NAME_RE.search(name))


def _duration(value: Duration, path: Path) -> Iterable[Problem]:
    # Out of protobuf's range, the runtime raises when the value is converted; 0 is "unset".
    seconds, nanos = value.seconds, value.nanos
    if not -_MAX_NANOS <= nanos <= _MAX_NANOS:
        return [((*path, "nanos"), f"{nanos} is outside ±{_MAX_NANOS}")]
    if (seconds > 0 > nanos) or (seconds < 0 < nanos):
        return [((*path, "nanos"), "must have the sign of seconds")]
    if seconds < 0 or nanos < 0:
        return [(path, "must not be negative")]
    if seconds > MAX_DURATION_SECONDS or (seconds == MAX_DURATION_SECONDS and nanos):
        return [(path, "must be at most 365 days")]
    return []
