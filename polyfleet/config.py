"""Settings for every polyfleet process, read from the environment and `.env` files.

Each subsystem has its own settings class with its own environment prefix, so SREs
tune one part without touching another. Temporal's connection (address, namespace,
API key, TLS) is deliberately *not* here: it comes from the Temporal SDK's own
environment configuration (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`,
`TEMPORAL_API_KEY`, `TEMPORAL_TLS_*`), see :func:`polyfleet.temporal.connect`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_API_ADDRESS = "127.0.0.1:7234"


def _seconds_or_iso(value: Any) -> Any:
    # Environment values are strings: accept "30" / "1.5" as seconds besides ISO 8601 "PT30S".
    if isinstance(value, str):
        try:
            return timedelta(seconds=float(value))
        except ValueError:
            return value
    return value


Duration = Annotated[timedelta, BeforeValidator(_seconds_or_iso)]
"""A duration setting: ISO 8601 (``PT30S``) or a number of seconds (``30``)."""


def _env_files() -> tuple[str, ...]:
    # `.env` holds shared settings; `.env.<POLYFLEET_ENV>` overrides them per environment.
    env = os.environ.get("POLYFLEET_ENV", "")
    return (".env", f".env.{env}") if env else (".env",)


class TaskQueueSettings(BaseSettings):
    """Temporal task queue names (DESIGN: Configuration)."""

    model_config = SettingsConfigDict(env_prefix="TEMPORAL_", env_file=_env_files(), extra="ignore")

    agent_execution_orchestrator_task_queue: str = "agent_execution_orchestrator"
    agent_execution_runner_task_queue: str = "agent_execution_runner"
    workflow_execution_orchestrator_task_queue: str = "workflow_execution_orchestrator"
    workflow_execution_runner_task_queue: str = "workflow_execution_runner"


class ApiSettings(BaseSettings):
    """Where the orchestrator's gRPC API listens and how clients reach it."""

    model_config = SettingsConfigDict(
        env_prefix="POLYFLEET_", env_file=_env_files(), extra="ignore"
    )

    api_address: str = DEFAULT_API_ADDRESS
    # gRPC message size limit, set deliberately on server and clients alike.
    grpc_max_message_bytes: int = Field(default=16 * 1024 * 1024, gt=0)


class StoreSettings(BaseSettings):
    """The embedded LMDB store."""

    model_config = SettingsConfigDict(
        env_prefix="POLYFLEET_", env_file=_env_files(), extra="ignore"
    )

    data_dir: Path = Path(".polyfleet")
    # Initial LMDB map size; the store doubles it when it fills up.
    store_map_size_bytes: int = Field(default=64 * 1024 * 1024, gt=0)


class ExecutionSettings(BaseSettings):
    """Timeouts of executions and of the activity contract (DESIGN: activity contract)."""

    model_config = SettingsConfigDict(
        env_prefix="POLYFLEET_", env_file=_env_files(), extra="ignore"
    )

    agent_run_timeout: Duration = timedelta(minutes=10)
    workflow_run_timeout: Duration = timedelta(minutes=30)
    activity_schedule_to_start_timeout: Duration = timedelta(minutes=1)
    ensure_thread_start_to_close_timeout: Duration = timedelta(seconds=30)
    execute_graphton_start_to_close_timeout: Duration = timedelta(minutes=10)
    execute_workflow_start_to_close_timeout: Duration = timedelta(minutes=30)
    activity_heartbeat_timeout: Duration = timedelta(seconds=30)
    update_status_start_to_close_timeout: Duration = timedelta(seconds=30)
    execute_default_wait: Duration = timedelta(seconds=60)
    execute_max_wait: Duration = timedelta(seconds=300)
    # Attempts of ExecuteWorkflow; each retry on another runner resumes from the checkpoint.
    execute_workflow_max_attempts: int = Field(default=3, gt=0)
    # Largest user message (characters) and workflow input (bytes) Create accepts. Content
    # lives in the store, never in Temporal payloads, but it travels in every status read.
    max_message_chars: int = Field(default=100_000, gt=0)
    max_input_bytes: int = Field(default=256 * 1024, gt=0)
    # Largest agent answer (UTF-8 bytes), workflow output or task result (bytes of JSON)
    # an execution may produce; a larger one fails it with error type OutputTooLarge. Keep
    # it well under POLYFLEET_GRPC_MAX_MESSAGE_BYTES: a FULL read carries it besides the
    # rest of the execution.
    max_output_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # Byte budget of one List page: a page ends early (with a next page token) before the
    # execution that would take it over. Well under the gRPC message limit.
    list_page_max_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # The reconciler: how often it looks for executions whose state disagrees with Temporal,
    # how old an execution must be before a periodic pass touches it (a Create may still be
    # starting its workflow), and how long a never-started execution may still be started.
    reconcile_interval: Duration = timedelta(seconds=60)
    reconcile_min_age: Duration = timedelta(seconds=30)
    reconcile_start_grace: Duration = timedelta(minutes=10)
    # Test hook only: SIGKILL the orchestrator between persisting an execution and starting
    # its workflow, to prove the reconciler repairs that window.
    fault_kill_before_workflow_start: bool = False


class RunnerSettings(BaseSettings):
    """A runner worker: which queues it polls and how much it runs at once."""

    model_config = SettingsConfigDict(
        env_prefix="POLYFLEET_RUNNER_", env_file=_env_files(), extra="ignore"
    )

    # Poll the agent runner queue (EnsureThread, ExecuteGraphton).
    agents: bool = True
    # Poll the workflow runner queue (ExecuteWorkflow).
    workflows: bool = True
    max_concurrent_activities: int = Field(default=50, gt=0)
    # How often long activities heartbeat; keep it well inside the heartbeat timeout.
    # Cancellation reaches an activity only through a heartbeat, so this is also about
    # how long a cancelled execution keeps running.
    heartbeat_interval: Duration = timedelta(seconds=2)
    # Longest time the Temporal SDK holds back a heartbeat. Its default throttles to 80%
    # of the heartbeat timeout (24 s of 30 s), which would delay cancellation as long.
    heartbeat_throttle_interval: Duration = timedelta(seconds=1)
    # Largest task input/output shown in a workflow execution's status (bytes of JSON).
    task_value_max_bytes: int = Field(default=256 * 1024, gt=0)
    # Environment variables a workflow document may read as `$env` (an allow-list).
    workflow_env: list[str] = []
    # Longest pause between retries of a RunnerService call that met a transient error
    # (the orchestrator restarting). Calls are retried until the activity's own deadline.
    report_max_backoff: Duration = timedelta(seconds=5)
    # Test hook only: SIGKILL the runner right after it stored workflow checkpoint N of an
    # execution, before any heartbeat carried it, to prove resume finds it (0 = off).
    fault_kill_after_checkpoint: int = Field(default=0, ge=0)
    # Streamed tokens are batched into one report per message per interval.
    delta_flush_interval: Duration = timedelta(milliseconds=100)
    # Dotenv-format file of secret values (NAME=value) for agents' declared secrets.
    secrets_file: Path | None = None
    # Also resolve declared secrets from the runner's environment (it wins over the file).
    secrets_from_environment: bool = True
    # Backoff between attempts of a model call that failed transiently (429, 5xx,
    # timeouts): doubles per attempt up to the maximum; a Retry-After is honoured up to
    # the maximum. The number of attempts and the per-call timeout are per agent
    # (ModelConfig.retry: default 3 attempts, 120 s).
    model_retry_initial_backoff: Duration = timedelta(seconds=1)
    model_retry_max_backoff: Duration = timedelta(seconds=30)
    # Time for an MCP server to start (or accept the connection) and list its tools.
    mcp_connect_timeout: Duration = timedelta(seconds=30)
