"""Settings for every polyfleet process, read from the environment and `.env` files.

Each subsystem has its own settings class with its own environment prefix, so SREs
tune one part without touching another. Every field carries a description: the README's
configuration table is generated from them (``scripts/gen_config_docs.py``). Temporal's
connection (address, namespace, API key, TLS) is deliberately *not* here: it comes from the
Temporal SDK's own environment configuration (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`,
`TEMPORAL_API_KEY`, `TEMPORAL_TLS_*`), see :func:`polyfleet.temporal.connect`.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import logging
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from polyfleet import contract
from polyfleet.durations import parse_duration
from polyfleet.roles import Role, parse_role

DEFAULT_API_ADDRESS = "127.0.0.1:7234"
DEFAULT_HTTP_ADDRESS = "127.0.0.1:7280"
# The raw files of the DSL specification's official function catalog (polyfleet/dsl/catalogs.py).
OFFICIAL_FUNCTION_CATALOG = "https://raw.githubusercontent.com/serverlessworkflow/catalog/"
# Variables with this prefix are polyfleet's: an unknown one is most likely a misspelling.
PREFIX = "POLYFLEET_"

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
"""A duration setting, in any form :func:`polyfleet.durations.parse_duration` reads."""

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A setting has an invalid value; the message names its environment variable."""


class EnvironmentSettings(BaseSettings):
    """The deployment environment, which picks the `.env` files the other settings read."""

    # From the process environment only: it decides which files are read.
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    env: str = Field(
        default="",
        description="deployment environment: `.env.<env>` is read after `.env` and wins over it",
    )

    def env_files(self) -> tuple[str, ...]:
        """The `.env` files to read, later ones winning."""
        return (".env", f".env.{self.env}") if self.env else (".env",)


class Settings(BaseSettings):
    """Base of the settings classes: `.env` files, and errors that name the variable."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    def __init__(self, **values: Any) -> None:
        """Read the environment and `.env` files; ``values`` win over both.

        Raises:
            ConfigError: A value is invalid; the message names the variable and the value.

        """
        try:
            # The files are chosen now, not at import, so POLYFLEET_ENV is read when used.
            super().__init__(_env_file=EnvironmentSettings().env_files(), **values)
        except ValidationError as exc:
            raise ConfigError(_describe(type(self), exc)) from None
        except SettingsError as exc:  # a list or other JSON value that does not parse
            # pydantic-settings names only the field, in its message.
            field = re.search(r'field "(\w+)"', str(exc))
            name = variable_name(type(self), field.group(1)) if field else "a setting"
            raise ConfigError(f"{name}: not valid JSON ({exc.__cause__ or exc})") from None


def _describe(settings: type[Settings], exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{variable_name(settings, field)}={error['input']!r}: {message}")
    return "; ".join(problems)


class TaskQueueSettings(Settings):
    """Temporal task queue names (docs/contract.md, "Queues and names")."""

    model_config = SettingsConfigDict(env_prefix="TEMPORAL_")

    agent_execution_orchestrator_task_queue: str = Field(
        default="agent_execution_orchestrator", description="queue of the agent workflows"
    )
    agent_execution_runner_task_queue: str = Field(
        default="agent_execution_runner",
        description="default runner queue of EnsureThread and ExecuteGraphton (agents "
        "without runnerQueue); runners poll it unless POLYFLEET_RUNNER_AGENT_QUEUES is set",
    )
    workflow_execution_orchestrator_task_queue: str = Field(
        default="workflow_execution_orchestrator",
        description="queue of the workflow-execution workflows",
    )
    workflow_execution_runner_task_queue: str = Field(
        default="workflow_execution_runner",
        description="default runner queue of ExecuteWorkflow (workflows without runnerQueue); "
        "runners poll it unless POLYFLEET_RUNNER_WORKFLOW_QUEUES is set",
    )


class ApiSettings(Settings):
    """Where the orchestrator's gRPC API listens and how clients reach it."""

    api_address: str = Field(
        default=DEFAULT_API_ADDRESS,
        description="where the orchestrator listens; where the CLI and runners connect",
    )
    grpc_max_message_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        description="gRPC send/receive limit, set deliberately on server and clients alike",
    )
    # The server's transport (docs/security.md, "Transport (TLS and mTLS)").
    api_tls_cert: Path | None = Field(
        default=None,
        description="PEM certificate (chain) the orchestrator serves TLS with; set with "
        "POLYFLEET_API_TLS_KEY; reloaded when the file changes",
    )
    api_tls_key: Path | None = Field(
        default=None,
        description="PEM private key of POLYFLEET_API_TLS_CERT; set both or neither",
    )
    api_tls_client_ca: Path | None = Field(
        default=None,
        description="PEM CA bundle: the orchestrator requires client certificates signed by "
        "it (mTLS); needs POLYFLEET_API_TLS_CERT",
    )
    api_allow_insecure: bool = Field(
        default=False,
        description="let the orchestrator listen on a non-loopback address without TLS "
        "or without authentication (POLYFLEET_AUTH_*): only on a trusted network",
    )
    api_reflection: bool = Field(
        default=True,
        description="serve gRPC reflection; when authentication is on, its callers need a "
        "valid credential too",
    )
    api_max_watches_per_caller: int = Field(
        default=32,
        ge=0,
        description="concurrent Watch streams one caller may hold; 0: unlimited",
    )
    api_create_rate_per_caller: float = Field(
        default=0.0,
        ge=0,
        allow_inf_nan=False,
        description="Create and Execute calls per second one caller may make (a token "
        "bucket); 0: no limit",
    )
    api_create_burst_per_caller: int = Field(
        default=20,
        gt=0,
        description="Create and Execute calls one caller may make at once before "
        "POLYFLEET_API_CREATE_RATE_PER_CALLER applies",
    )
    # How clients (polyfleet.client, the CLI, runners, `polyfleet dev`) reach the API
    # (docs/client.md, "Connect").
    api_tls: bool = Field(
        default=False, description="clients speak TLS to the API (docs/client.md)"
    )
    api_tls_root_cert: Path | None = Field(
        default=None,
        description="PEM file of the CA of the API's certificate; unset: the system roots",
    )
    api_tls_client_cert: Path | None = Field(
        default=None,
        description="PEM client certificate clients present (mTLS); set with "
        "POLYFLEET_API_TLS_CLIENT_KEY",
    )
    api_tls_client_key: Path | None = Field(
        default=None,
        description="PEM private key of POLYFLEET_API_TLS_CLIENT_CERT; set both or neither",
    )
    api_tls_server_name: str = Field(
        default="",
        description="host name clients expect in the API's certificate, when it differs "
        "from the address's host",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="bearer token clients send on every call (`authorization: Bearer …`)",
    )

    def __init__(self, **values: Any) -> None:
        """Read the settings and check the TLS files that go in pairs.

        Raises:
            ConfigError: A value is invalid, or only one of a certificate and its key is set.

        """
        super().__init__(**values)
        for cert, key in (
            ("api_tls_cert", "api_tls_key"),
            ("api_tls_client_cert", "api_tls_client_key"),
        ):
            if (getattr(self, cert) is None) != (getattr(self, key) is None):
                raise ConfigError(
                    f"{variable_name(ApiSettings, cert)} and {variable_name(ApiSettings, key)}"
                    ": set both (a PEM certificate and its private key) or neither"
                )
        if self.api_tls_client_ca is not None and self.api_tls_cert is None:
            raise ConfigError(
                "POLYFLEET_API_TLS_CLIENT_CA needs POLYFLEET_API_TLS_CERT and "
                "POLYFLEET_API_TLS_KEY: client certificates are checked only over TLS"
            )

    @property
    def server_tls(self) -> bool:
        """Whether the orchestrator serves TLS (a certificate and key are set)."""
        return self.api_tls_cert is not None

    def check_bind(
        self, address: str, authenticated: bool, variable: str = "POLYFLEET_API_ADDRESS"
    ) -> None:
        """Refuse anything but loopback without TLS and authentication, unless allowed.

        Args:
            address: The ``host:port`` the orchestrator is about to listen on.
            authenticated: Whether the API authenticates its callers
                (:attr:`AuthSettings.enabled`).
            variable: The setting ``address`` comes from, for the message (the HTTP API
                follows the same rule with ``POLYFLEET_HTTP_ADDRESS``).

        Raises:
            ConfigError: ``address`` is not loopback, TLS or authentication is not
                configured (the message says which) and ``POLYFLEET_API_ALLOW_INSECURE`` is
                not true.

        """
        if self.api_allow_insecure or is_loopback(address):
            return
        missing = []
        if not self.server_tls:
            missing.append("TLS (set POLYFLEET_API_TLS_CERT and POLYFLEET_API_TLS_KEY)")
        if not authenticated:
            missing.append(
                "authentication (set POLYFLEET_AUTH_TOKENS_FILE, POLYFLEET_AUTH_OIDC_ISSUER "
                "or POLYFLEET_AUTH_MTLS_ROLES)"
            )
        if not missing:
            return
        raise ConfigError(
            f"{variable}={address} is not a loopback address and the API has no "
            f"{' and no '.join(missing)}: configure it, or set "
            "POLYFLEET_API_ALLOW_INSECURE=true to serve it anyway on a trusted network "
            "(see docs/security.md)"
        )


def is_loopback(address: str) -> bool:
    """Whether ``host:port`` names only this machine (127.0.0.0/8, ::1, localhost).

    An empty host, ``0.0.0.0`` or ``[::]`` listens on every interface: not loopback.
    """
    host = address.rpartition(":")[0] if ":" in address else address
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _role_map(value: object) -> object:
    """``name=role,name2=role`` (or a JSON object) as a mapping of names to roles."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            return json.loads(text)
        pairs: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, role = item.rpartition("=")
            if not sep or not name.strip():
                raise ValueError(f"{item!r} is not NAME=ROLE")
            pairs[name.strip()] = role
        value = pairs
    if isinstance(value, Mapping):
        return {str(name): parse_role(str(role)) for name, role in value.items()}
    return value


def _name_list(value: object) -> object:
    """A comma-separated list (or a JSON list) of names."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _task_queues(names: list[str]) -> list[str]:
    """Check each name with the kernel's queue rule; drop repeats, keep the order."""
    for name in names:
        problem = contract.task_queue_problem(name)
        if problem:
            raise ValueError(f"queue {problem}")
    return list(dict.fromkeys(names))


TaskQueueList = Annotated[
    list[str], NoDecode, BeforeValidator(_name_list), AfterValidator(_task_queues)
]
"""A setting listing task queues: ``queue-a,queue-b`` or a JSON list."""

#: What `POLYFLEET_RUNNER_ALLOW_RUN` may list: the `run` processes a runner starts.
RUN_PROCESSES = ("shell", "script")


def _run_processes(names: list[str]) -> list[str]:
    """Only the known `run` process kinds; drop repeats, keep the order."""
    for name in names:
        if name not in RUN_PROCESSES:
            raise ValueError(f"unknown run process {name!r}: expected {' or '.join(RUN_PROCESSES)}")
    return list(dict.fromkeys(names))


RunProcessList = Annotated[
    list[str], NoDecode, BeforeValidator(_name_list), AfterValidator(_run_processes)
]
"""A setting listing `run` process kinds: ``shell,script`` or a JSON list."""

RoleMap = Annotated[dict[str, Role], NoDecode, BeforeValidator(_role_map)]
"""A setting mapping names to roles: ``name=role,name2=role`` or a JSON object."""

# Asymmetric signatures only: an HMAC algorithm would verify with the JWKS's public data as
# the secret, and `none` verifies nothing.
OIDC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class AuthSettings(Settings):
    """Authentication of API callers (docs/security.md): tokens, OIDC JWTs, mTLS."""

    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}AUTH_")

    tokens_file: Path | None = Field(
        default=None,
        description="YAML file of the hashes of accepted bearer tokens, each with a subject "
        "and a role (`polyfleet tokens create`); re-read when it changes",
    )
    oidc_issuer: str = Field(
        default="",
        description="accept JWTs from this OpenID Connect issuer (its `iss`, an http(s) URL)",
    )
    oidc_audience: str = Field(
        default="",
        description="the `aud` the JWTs must carry; empty: not checked",
    )
    oidc_jwks_url: str = Field(
        default="",
        description="URL of the issuer's signing keys (JWKS); empty: discovered from "
        "`<issuer>/.well-known/openid-configuration`",
    )
    oidc_roles_claim: str = Field(
        default="roles",
        description="claim holding the caller's roles or groups, a string or a list; a "
        "dotted path reaches into objects (`realm_access.roles`)",
    )
    oidc_subject_claim: str = Field(
        default="sub", description="claim naming the caller (recorded as who did what)"
    )
    oidc_role_map: RoleMap = Field(
        default={},
        description="`group=role,...`: which value of the roles claim grants which role; "
        "empty: the values are role names; of several roles the highest counts, and "
        "`runner` only when it is the only one",
    )
    oidc_algorithms: Annotated[list[str], NoDecode, BeforeValidator(_name_list)] = Field(
        default=["RS256", "ES256"],
        description="JWT signature algorithms accepted (comma-separated; asymmetric only)",
    )
    mtls_roles: RoleMap = Field(
        default={},
        description="`name=role,...`: the role of a client certificate by its common name "
        "or a DNS subject alternative name (needs POLYFLEET_API_TLS_CLIENT_CA)",
    )
    runner_binding_ttl: Duration = Field(
        default=timedelta(seconds=10),
        description="how long a verified runner binding is trusted before it is checked "
        "against Temporal again",
    )

    def __init__(self, **values: Any) -> None:
        """Read the settings and check the OIDC ones.

        Raises:
            ConfigError: A value is invalid; the message names the variable.

        """
        super().__init__(**values)

        def name(field: str) -> str:
            return variable_name(AuthSettings, field)

        for field in ("oidc_issuer", "oidc_jwks_url"):
            url = getattr(self, field)
            if url and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
                raise ConfigError(f"{name(field)}={url!r}: expected an http(s) URL")
        if (self.oidc_audience or self.oidc_jwks_url) and not self.oidc_issuer:
            raise ConfigError(
                f"{name('oidc_audience')} and {name('oidc_jwks_url')} need {name('oidc_issuer')}"
            )
        unknown = sorted(set(self.oidc_algorithms) - OIDC_ALGORITHMS)
        if unknown or not self.oidc_algorithms:
            raise ConfigError(
                f"{name('oidc_algorithms')}={','.join(self.oidc_algorithms)!r}: expected "
                f"some of {', '.join(sorted(OIDC_ALGORITHMS))}"
            )
        for field in ("oidc_roles_claim", "oidc_subject_claim"):
            if not getattr(self, field).strip():
                raise ConfigError(f"{name(field)}: must not be empty")
        if self.runner_binding_ttl <= timedelta(0):
            raise ConfigError(f"{name('runner_binding_ttl')}: must be more than 0")

    @property
    def enabled(self) -> bool:
        """Whether the API authenticates its callers (any credential is configured)."""
        return bool(self.tokens_file or self.oidc_issuer or self.mtls_roles)


class StoreSettings(Settings):
    """The embedded LMDB store."""

    data_dir: Path = Field(
        default=Path(".polyfleet"), description="orchestrator data (LMDB in `store/`)"
    )
    store_map_size_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="initial LMDB map size; the store doubles it when it fills up",
    )
    store_event_retention: int = Field(
        default=10_000,
        gt=0,
        description="CloudEvents kept (the newest); older ones, and their deduplication, go",
    )


def _function_sources(prefixes: list[str]) -> list[str]:
    for prefix in prefixes:
        if not re.match(r"^https?://[^/]+", prefix):
            raise ValueError(f"{prefix!r} is not an http(s) URL prefix")
    return prefixes


class ExecutionSettings(Settings):
    """Timeouts of executions and of the activity contract (docs/contract.md)."""

    agent_run_timeout: Duration = Field(
        default=contract.AGENT_RUN_TIMEOUT, description="agent workflow run timeout"
    )
    workflow_run_timeout: Duration = Field(
        default=contract.WORKFLOW_RUN_TIMEOUT,
        description="workflow-execution workflow run timeout",
    )
    activity_schedule_to_start_timeout: Duration = Field(
        default=contract.SCHEDULE_TO_START,
        description="how long an activity may wait for a runner",
    )
    ensure_thread_start_to_close_timeout: Duration = Field(
        default=contract.ENSURE_THREAD_START_TO_CLOSE,
        description="EnsureThread start-to-close timeout",
    )
    execute_graphton_start_to_close_timeout: Duration = Field(
        default=contract.EXECUTE_GRAPHTON_START_TO_CLOSE,
        description="ExecuteGraphton start-to-close timeout",
    )
    execute_workflow_start_to_close_timeout: Duration = Field(
        default=contract.EXECUTE_WORKFLOW_START_TO_CLOSE,
        description="ExecuteWorkflow start-to-close timeout",
    )
    activity_heartbeat_timeout: Duration = Field(
        default=contract.HEARTBEAT_TIMEOUT,
        description="heartbeat timeout of the long activities",
    )
    update_status_start_to_close_timeout: Duration = Field(
        default=contract.UPDATE_STATUS_START_TO_CLOSE,
        description="UpdateStatus (a local activity) timeout",
    )
    execute_default_wait: Duration = Field(
        default=timedelta(seconds=60),
        description="how long a synchronous Execute waits when the request sets no wait",
    )
    execute_max_wait: Duration = Field(
        default=timedelta(seconds=300), description="longest wait a synchronous Execute accepts"
    )
    execute_workflow_max_attempts: int = Field(
        default=3,
        gt=0,
        description="ExecuteWorkflow attempts; each retry, on any runner, resumes from the "
        "last checkpoint",
    )
    # Content lives in the store, never in Temporal payloads, but it travels in every
    # status read: hence limits on what Create accepts.
    max_message_chars: int = Field(
        default=100_000, gt=0, description="largest user message (characters) Create accepts"
    )
    max_input_bytes: int = Field(
        default=256 * 1024, gt=0, description="largest workflow input (bytes) Create accepts"
    )
    # Keep it well under POLYFLEET_GRPC_MAX_MESSAGE_BYTES: a FULL read carries it besides
    # the rest of the execution.
    max_output_bytes: int = Field(
        default=4 * 1024 * 1024,
        gt=0,
        description="largest agent answer (UTF-8 bytes), workflow output or task result "
        "(bytes of JSON); over it the execution fails with `OutputTooLarge`",
    )
    list_page_max_bytes: int = Field(
        default=4 * 1024 * 1024,
        gt=0,
        description="byte budget of one List page: it ends early, with a next page token, "
        "before the execution that would take it over",
    )
    stuck_after: Duration = Field(
        default=timedelta(minutes=10),
        description="`polyfleet fleet status` warns of RUNNING executions without any event "
        "for longer than this (possibly stuck)",
    )
    dsl_function_sources: Annotated[list[str], AfterValidator(_function_sources)] = Field(
        default=[OFFICIAL_FUNCTION_CATALOG],
        description="JSON list of http(s) URL prefixes catalog and URL functions of workflow "
        "documents are fetched from when a workflow is applied (end each with `/`); "
        "`[]`: none (docs/dsl.md, 'use.functions and catalogs')",
    )
    dsl_function_timeout: Duration = Field(
        default=timedelta(seconds=10),
        description="how long applying a workflow waits for one function definition",
    )
    dsl_function_max_bytes: int = Field(
        default=256 * 1024, gt=0, description="largest function definition (bytes) fetched"
    )


class ReconcilerSettings(Settings):
    """The reconciler, which repairs executions whose state disagrees with Temporal."""

    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}RECONCILE_")

    interval: Duration = Field(
        default=timedelta(seconds=60),
        description="how often the reconciler checks PENDING and RUNNING executions "
        "against Temporal (see docs/operations.md)",
    )
    min_age: Duration = Field(
        default=timedelta(seconds=30),
        description="how old an execution must be before a periodic pass touches it "
        "(a Create may still be starting its workflow)",
    )
    start_grace: Duration = Field(
        default=timedelta(minutes=10),
        description="how long an execution whose workflow never started may still be "
        "started; after it, the execution fails",
    )


def _empty_is_zero(value: object) -> object:
    return 0 if isinstance(value, str) and not value.strip() else value


def _empty_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


class RunnerSettings(Settings):
    """A runner worker: which queues it polls and how much it runs at once."""

    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}RUNNER_")

    agents: bool = Field(
        default=True, description="poll the agent runner queue (EnsureThread, ExecuteGraphton)"
    )
    workflows: bool = Field(
        default=True, description="poll the workflow runner queue (ExecuteWorkflow)"
    )
    # Runner pools (docs/operations.md, "Runner pools"): agents and workflows with their own
    # runnerQueue are served only by runners that list it here.
    agent_queues: TaskQueueList = Field(
        default=[],
        description="agent runner queues to poll, comma-separated (e.g. `gpu-runners`); "
        "empty: TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE",
    )
    workflow_queues: TaskQueueList = Field(
        default=[],
        description="workflow runner queues to poll, comma-separated; empty: "
        "TEMPORAL_WORKFLOW_EXECUTION_RUNNER_TASK_QUEUE",
    )
    max_concurrent_activities: int = Field(
        default=50, gt=0, description="activities run at once, per runner and queue"
    )
    # Cancellation reaches an activity only through a heartbeat.
    heartbeat_interval: Duration = Field(
        default=timedelta(seconds=2),
        description="how often long activities heartbeat; keep it well inside the heartbeat "
        "timeout; it also bounds how fast a cancel reaches a running execution",
    )
    # The SDK's default throttles to 80% of the heartbeat timeout (24 s of 30 s), which
    # would delay cancellation as long.
    heartbeat_throttle_interval: Duration = Field(
        default=timedelta(seconds=1),
        description="longest the Temporal SDK holds back a heartbeat (and so a cancellation)",
    )
    task_value_max_bytes: int = Field(
        default=256 * 1024,
        gt=0,
        description="largest task input/output (bytes of JSON) copied into a workflow "
        "execution's status",
    )
    workflow_env: list[str] = Field(
        default=[],
        description="JSON list of environment variables a workflow document may read as "
        "`$env` (an allow-list)",
    )
    allow_run: RunProcessList = Field(
        default=[],
        description="`run` processes workflow documents may start on this runner: `shell`, "
        "`script` or both, comma-separated; empty: none (docs/dsl.md, 'run')",
    )
    run_timeout: Duration = Field(
        default=timedelta(minutes=10),
        description="longest a `run: shell` or `run: script` process may run (a task's "
        "shorter `timeout` wins)",
    )
    run_output_max_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="largest stdout or stderr a `run: shell` or `run: script` process may "
        "write; more fails the task",
    )
    report_max_backoff: Duration = Field(
        default=timedelta(seconds=5),
        description="longest pause between retries of a RunnerService call while the "
        "orchestrator is unreachable; calls are retried until the activity's own deadline",
    )
    delta_flush_interval: Duration = Field(
        default=timedelta(milliseconds=100),
        description="streamed tokens are batched into one report per message per interval",
    )
    secrets_file: Path | None = Field(
        default=None,
        description="dotenv file of agent secret values (`NAME=value`) for agents' declared "
        "secrets",
    )
    secrets_from_environment: bool = Field(
        default=True,
        description="also resolve agent secrets from the runner's environment (it wins over "
        "the file)",
    )
    # The number of attempts and the per-call timeout are per agent (ModelConfig.retry:
    # default 3 attempts, 120 s).
    model_retry_initial_backoff: Duration = Field(
        default=timedelta(seconds=1),
        description="first backoff after a transient model-provider error (429, 5xx, "
        "timeout); doubles per attempt",
    )
    model_retry_max_backoff: Duration = Field(
        default=timedelta(seconds=30),
        description="longest backoff between model-call attempts; caps a Retry-After too",
    )
    mcp_connect_timeout: Duration = Field(
        default=timedelta(seconds=30),
        description="time for an MCP server to start (or accept the connection) and list its tools",
    )
    # Kubernetes' terminationGracePeriodSeconds should be a little longer than this.
    shutdown_grace: Duration = Field(
        default=timedelta(minutes=10),
        description="on SIGTERM the runner stops polling at once and gives the activities it "
        "holds this long to finish (heartbeating meanwhile); only then are they cancelled",
    )
    health_port: Annotated[int, BeforeValidator(_empty_is_zero)] = Field(
        default=0,
        ge=0,
        le=65535,
        description="port of the HTTP health endpoints `/livez` and `/readyz` (deployments use "
        "8081); 0 or empty: no health server",
    )
    health_address: str = Field(
        default="0.0.0.0",
        description="address the health server binds: all interfaces, so the kubelet reaches "
        "it at the pod's IP; it serves no secret",
    )


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


class LogSettings(Settings):
    """Process-wide logging."""

    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
    ] = Field(default="INFO", description="level of the lines logged to stderr")
    log_format: Annotated[Literal["text", "json"], BeforeValidator(_lower)] = Field(
        default="text",
        description="`text`: one readable line per record; `json`: one JSON object per line "
        "with level, logger, message, execution/workflow/run IDs and trace/span IDs "
        '(docs/observability.md, "Logs"); Temporal core\'s own lines come out the same way',
    )


class ProcessSettings(Settings):
    """How a serving process (orchestrator, runner) runs its event loop."""

    event_loop: Annotated[Literal["asyncio", "uvloop"], BeforeValidator(_lower)] = Field(
        default="asyncio",
        description="`asyncio`: the standard library's event loop; `uvloop`: libuv's, "
        "1-3 ms less orchestrator CPU per agent execution in the fleet benchmark, which "
        "makes the same metrics and traces a larger share of it (docs/benchmarks.md)",
    )


class MetricsSettings(Settings):
    """The `/metrics` endpoint of a process (docs/observability.md); OTLP takes `OTEL_*`."""

    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}METRICS_")

    port: Annotated[int | None, BeforeValidator(_empty_is_none)] = Field(
        default=None,
        ge=0,
        le=65535,
        description="port of the Prometheus endpoint `/metrics`; unset: 9464 on the "
        "orchestrator, none on a runner (several share a machine: give each its own); 0: none",
    )
    address: str = Field(
        default="0.0.0.0",
        description="address the `/metrics` endpoint binds: all interfaces, so Prometheus "
        "reaches it at the pod's IP; it serves no secret",
    )


class TracingSettings(Settings):
    """How people reach a trace; where spans go is the standard `OTEL_*` variables."""

    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}TRACE_")

    url_template: str = Field(
        default="",
        description="link to a trace that `polyfleet executions get` prints, `{trace_id}` "
        "replaced (e.g. `https://tempo.example/trace/{trace_id}`); empty: the ID only",
    )


class HttpSettings(Settings):
    """The orchestrator's HTTP/JSON API, SSE streams and dashboard (docs/http.md)."""

    model_config = SettingsConfigDict(env_prefix=f"{PREFIX}HTTP_")

    enabled: bool = Field(
        default=True,
        description="serve the HTTP/JSON API, its SSE streams and the dashboard beside gRPC",
    )
    address: str = Field(
        default=DEFAULT_HTTP_ADDRESS,
        description="where the HTTP API and dashboard listen; TLS with the API's "
        "certificate (POLYFLEET_API_TLS_CERT) when it has one; a non-loopback address "
        "needs TLS and authentication as the gRPC API does",
    )
    temporal_ui_url: str = Field(
        default="",
        description="base URL of the Temporal UI (e.g. `http://127.0.0.1:8233`): the "
        "dashboard links each execution to its workflow there; empty: no link",
    )


ALL_SETTINGS: tuple[type[BaseSettings], ...] = (
    TaskQueueSettings,
    ApiSettings,
    AuthSettings,
    StoreSettings,
    ExecutionSettings,
    ReconcilerSettings,
    RunnerSettings,
    LogSettings,
    ProcessSettings,
    MetricsSettings,
    TracingSettings,
    HttpSettings,
    EnvironmentSettings,
)
"""Every settings class, in the order the README documents them."""


def variable_name(settings: type[BaseSettings], field: str) -> str:
    """The environment variable of ``field`` of ``settings``."""
    return f"{settings.model_config.get('env_prefix', '')}{field}".upper()


def known_variables() -> list[str]:
    """Every environment variable the settings classes read."""
    return [variable_name(cls, field) for cls in ALL_SETTINGS for field in cls.model_fields]


def unknown_variables(environ: Mapping[str, str]) -> dict[str, str | None]:
    """``POLYFLEET_*`` variables of ``environ`` no setting reads, each with the closest known.

    Args:
        environ: The environment, e.g. ``os.environ``.

    Returns:
        Each unknown variable and the known variable it most resembles (None: none does).

    """
    known = known_variables()
    # Compared without the shared prefix, which would make every name look alike.
    suffixes = {name.removeprefix(PREFIX): name for name in known if name.startswith(PREFIX)}
    unknown = sorted(
        name for name in environ if name.upper().startswith(PREFIX) and name.upper() not in known
    )
    return {
        name: next(
            (
                suffixes[match]
                for match in difflib.get_close_matches(
                    name.upper().removeprefix(PREFIX), suffixes, n=1, cutoff=0.75
                )
            ),
            None,
        )
        for name in unknown
    }


def warn_unknown_variables(environ: Mapping[str, str]) -> None:
    """Log a warning for each ``POLYFLEET_*`` variable no setting reads (a likely typo)."""
    for name, closest in unknown_variables(environ).items():
        hint = f"; did you mean {closest}?" if closest else ""
        logger.warning("ignoring unknown environment variable %s%s", name, hint)
