"""The pydantic schemas of Agent and Workflow manifests: field types and single-field rules.

Rules of an Agent that need more than one field (secret references, literal credentials,
unique names, provider-specific fields) are the API's, in :mod:`polyfleet.agent_rules`;
:mod:`polyfleet.manifest.rules` maps their field paths to the manifest's; a Workflow's
document is checked by the DSL runtime's own validation (see
:mod:`polyfleet.manifest.workflow`).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from polyfleet.contract import task_queue_problem
from polyfleet.durations import parse_duration

API_VERSION = "polyfleet/v1"
SCRIPTED_PROVIDER = "scripted"
PROVIDERS = (SCRIPTED_PROVIDER, "openai", "anthropic", "ollama")

AGENT_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
# Names the model sees as tool names (OpenAI accepts ^[a-zA-Z0-9_-]{1,64}$).
TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# Secret names are environment-variable names.
SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
GRAPH_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
HTTP_URL_RE = re.compile(r"^https?://[^\s/]+")

# Bounds shared with the API's own validation, so apply fails early with a line number.
MAX_STEPS = 1000
MAX_MODEL_ATTEMPTS = 10
MAX_CHUNK_DELAY_MS = 10_000
_MAX_DURATION = timedelta(days=365)


def _positive_duration(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be greater than 0")
    if value > _MAX_DURATION:
        raise ValueError("must be at most 365 days")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive_duration)]


def _matching(pattern: re.Pattern[str], rule: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"invalid name {value!r}: {rule}")
        return value

    return AfterValidator(check)


def _http_url(value: str) -> str:
    if not HTTP_URL_RE.match(value):
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    return value


ToolName = Annotated[str, _matching(TOOL_NAME_RE, "use 1-64 letters, digits, '_' and '-'")]
SecretName = Annotated[
    str, _matching(SECRET_NAME_RE, "use letters, digits and '_', not starting with a digit")
]
HttpUrl = Annotated[str, AfterValidator(_http_url)]


class Schema(BaseModel):
    """Base of every manifest section."""

    # Strict so YAML's native types are taken as written: `chunkWords: "3"` is an error,
    # not a silent coercion. camelCase aliases match Kubernetes conventions.
    model_config = ConfigDict(
        extra="forbid", strict=True, alias_generator=to_camel, populate_by_name=True
    )


# --- the scripted model ----------------------------------------------------------------


class ScriptedToolCall(Schema):
    """``toolCall`` of a scripted rule: the tool the scripted model calls first."""

    name: ToolName
    arguments: dict[str, JsonValue] | None = None


class ScriptedRule(Schema):
    """One rule of the scripted model."""

    pattern: str
    reply: str = ""
    error: str = ""
    tool_call: ScriptedToolCall | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _reply_or_error(self) -> ScriptedRule:
        if bool(self.reply) == bool(self.error):
            raise ValueError("set exactly one of reply and error")
        return self


class ScriptedModel(Schema):
    """``model.scripted``: the offline, deterministic provider's answers."""

    rules: list[ScriptedRule] = Field(default_factory=list)
    default_reply: str = ""
    chunk_delay_ms: int = Field(default=0, ge=0, le=MAX_CHUNK_DELAY_MS)
    # 0 means "the provider's default" (3 words), matching the proto.
    chunk_words: int = Field(default=0, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _answers_something(self) -> ScriptedModel:
        if not self.rules and not self.default_reply:
            raise ValueError("set rules, defaultReply or both")
        return self


# --- model providers -------------------------------------------------------------------


class Pricing(Schema):
    """``model.pricing``: turns token usage into cost."""

    input_per_million_tokens: float = Field(default=0.0, ge=0)
    output_per_million_tokens: float = Field(default=0.0, ge=0)
    currency: str = ""

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", value):
            raise ValueError(f"invalid currency {value!r}: use an ISO 4217 code such as USD")
        return value


class Retry(Schema):
    """``model.retry``: retries of transient provider errors within one execution."""

    max_attempts: int | None = Field(default=None, ge=1, le=MAX_MODEL_ATTEMPTS)
    timeout: Duration | None = None


class ModelConfig(Schema):
    """``model``: the provider and its settings."""

    provider: str
    model: str = ""
    base_url: HttpUrl = ""
    api_key_secret: SecretName = ""
    parameters: dict[str, JsonValue] | None = None
    pricing: Pricing | None = None
    retry: Retry | None = None
    scripted: ScriptedModel | None = None

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(f"unknown provider {value!r} (supported: {', '.join(PROVIDERS)})")
        return value


# --- tools -----------------------------------------------------------------------------


class McpStdio(Schema):
    """``stdio``: an MCP server the runner starts as a child process."""

    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str = ""


class McpHttp(Schema):
    """``http``: a streamable-HTTP MCP server."""

    url: HttpUrl
    headers: dict[str, str] = Field(default_factory=dict)


class McpServer(Schema):
    """One entry of ``mcpServers``."""

    name: ToolName
    stdio: McpStdio | None = None
    http: McpHttp | None = None
    allowed_tools: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.stdio is None) == (self.http is None):
            raise ValueError("set exactly one of stdio and http")
        return self


class SubAgent(Schema):
    """One entry of ``subAgents``: a helper the agent calls as a tool."""

    name: ToolName
    description: str = Field(min_length=1)
    instructions: str = ""
    mcp_servers: list[McpServer] = Field(default_factory=list)
    model: ModelConfig | None = None


class Limits(Schema):
    """``limits``: bounds of one execution."""

    max_steps: int | None = Field(default=None, ge=1, le=MAX_STEPS)
    timeout: Duration | None = None


# --- the manifest ----------------------------------------------------------------------


class Metadata(Schema):
    """``metadata``."""

    name: str
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not AGENT_NAME_RE.fullmatch(value):
            raise ValueError(
                f"invalid name {value!r}: use 1-63 lowercase letters, digits and '-', "
                "starting with a letter"
            )
        return value


def _task_queue(value: str) -> str:
    # The kernel's one queue rule; an explicit "" is refused (omit the field for the default).
    problem = task_queue_problem(value)
    if problem:
        raise ValueError(problem)
    return value


RunnerQueue = Annotated[str, AfterValidator(_task_queue)]
"""``spec.runnerQueue``: the runner pool of an agent's or workflow's executions."""


class AgentSpec(Schema):
    """``spec`` of an Agent."""

    description: str = ""
    instructions: str = ""
    model: ModelConfig
    secrets: list[SecretName] = Field(default_factory=list)
    mcp_servers: list[McpServer] = Field(default_factory=list)
    sub_agents: list[SubAgent] = Field(default_factory=list)
    output_schema: dict[str, JsonValue] | None = None
    limits: Limits | None = None
    graph: str = ""
    runner_queue: RunnerQueue | None = None

    @field_validator("graph")
    @classmethod
    def _importable(cls, value: str) -> str:
        if value and not GRAPH_RE.fullmatch(value):
            raise ValueError(
                f"invalid graph {value!r}: use 'package.module:attribute', the importable "
                "compiled LangGraph graph on the runner"
            )
        return value


class AgentManifest(Schema):
    """A whole ``kind: Agent`` document."""

    api_version: Literal["polyfleet/v1"]
    kind: Literal["Agent"]
    metadata: Metadata
    spec: AgentSpec


class WorkflowSpec(Schema):
    """``spec`` of a Workflow: its description and its Serverless Workflow DSL document."""

    description: str = ""
    # The DSL document inline, as YAML; JsonValue keeps it plain JSON, as the runtime needs.
    document: dict[str, JsonValue] | None = None
    # ... or a YAML/JSON file holding it, relative to the manifest's directory.
    document_file: str = ""
    runner_queue: RunnerQueue | None = None

    @model_validator(mode="after")
    def _one_source(self) -> WorkflowSpec:
        if (self.document is None) == (not self.document_file):
            raise ValueError("set exactly one of document and documentFile")
        return self


class WorkflowManifest(Schema):
    """A whole ``kind: Workflow`` document."""

    api_version: Literal["polyfleet/v1"]
    kind: Literal["Workflow"]
    metadata: Metadata
    spec: WorkflowSpec
