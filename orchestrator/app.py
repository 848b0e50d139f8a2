"""The orchestrator process: gRPC API, embedded store and workflow-only Temporal workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2
from temporalio.client import Client
from temporalio.worker import Worker

import store
from orchestrator import resources
from orchestrator.activation_payloads import skip_noop_payload_walks
from orchestrator.activities import StatusActivities
from orchestrator.agent_executions import AgentExecutions
from orchestrator.auth.authn import Authenticator
from orchestrator.auth.binding import RunnerBinding
from orchestrator.auth.interceptor import AuthInterceptor
from orchestrator.auth.limits import CreateRate, WatchLimit
from orchestrator.changes import ExecutionChanges
from orchestrator.cloud_events import CloudEvents
from orchestrator.event_schedules import EventSchedules
from orchestrator.events import EventHub
from orchestrator.executions import ExecutionRegistry
from orchestrator.fleet_status import FleetStatus
from orchestrator.function_sources import FunctionSources
from orchestrator.health import HealthMonitor, store_check, temporal_check
from orchestrator.http.dashboard import DashboardConfig
from orchestrator.http.server import HttpFrontend
from orchestrator.ownership import (
    ApiAddressInUseError,
    DataDirLock,
    ensure_queues_free,
    load_store_id,
    worker_identity,
)
from orchestrator.reconciler import Reconciler
from orchestrator.runner_operations import RunnerOperations
from orchestrator.sandbox import WORKFLOW_RUNNER
from orchestrator.schedules import ScheduleActivities, Schedules
from orchestrator.servicers.agent_executions import AgentExecutionServicer
from orchestrator.servicers.cloud_events import EventServicer
from orchestrator.servicers.errors import MalformedRequestInterceptor
from orchestrator.servicers.fleet import FleetServicer
from orchestrator.servicers.resources import AgentServicer, SessionServicer, WorkflowServicer
from orchestrator.servicers.runner import RunnerServicer
from orchestrator.servicers.schedules import ScheduleServicer
from orchestrator.servicers.tracing import ApiTracingInterceptor
from orchestrator.servicers.workflow_executions import WorkflowExecutionServicer
from orchestrator.telemetry import ExecutionGauges, MetricsInterceptor
from orchestrator.tls import CertificateFiles
from orchestrator.workflow_executions import WorkflowExecutions
from orchestrator.workflows import AgentExecutionWorkflow, WorkflowExecutionWorkflow
from orchestrator.workflows.scheduled_start import ScheduledWorkflowStart
from polyfleet import contract
from polyfleet.channel import channel_options
from polyfleet.config import (
    ApiSettings,
    AuthSettings,
    ConfigError,
    ExecutionSettings,
    HttpSettings,
    MetricsSettings,
    ReconcilerSettings,
    StoreSettings,
    TaskQueueSettings,
    TracingSettings,
)
from polyfleet.telemetry.metrics import (
    ORCHESTRATOR_METRICS_PORT,
    ORCHESTRATOR_SERVICE,
    setup_metrics,
)
from polyfleet.temporal import connect, traced
from polyfleet.v1 import (
    agent_execution_pb2,
    agent_execution_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
    fleet_pb2,
    fleet_pb2_grpc,
    runner_pb2,
    runner_pb2_grpc,
    schedule_pb2,
    schedule_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
    workflow_execution_pb2,
    workflow_execution_pb2_grpc,
    workflow_pb2,
    workflow_pb2_grpc,
)

logger = logging.getLogger(__name__)

# The API's own services, then everything the server answers: the role table
# (orchestrator/auth/policy.py) has a rule for every method of SERVED_SERVICES.
API_SERVICES = tuple(
    module.DESCRIPTOR.services_by_name[name]
    for module, name in (
        (agent_pb2, "AgentService"),
        (session_pb2, "SessionService"),
        (agent_execution_pb2, "AgentExecutionService"),
        (workflow_pb2, "WorkflowService"),
        (workflow_execution_pb2, "WorkflowExecutionService"),
        (runner_pb2, "RunnerService"),
        (fleet_pb2, "FleetService"),
        (schedule_pb2, "ScheduleService"),
        (event_pb2, "EventService"),
    )
)
SERVED_SERVICES = (
    *API_SERVICES,
    health_pb2.DESCRIPTOR.services_by_name["Health"],
    reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
)
_SERVICE_NAMES = tuple(service.full_name for service in API_SERVICES)


@dataclass
class OrchestratorSettings:
    """Everything the orchestrator reads from the environment, one object per subsystem."""

    api: ApiSettings = field(default_factory=ApiSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    queues: TaskQueueSettings = field(default_factory=TaskQueueSettings)
    executions: ExecutionSettings = field(default_factory=ExecutionSettings)
    reconciler: ReconcilerSettings = field(default_factory=ReconcilerSettings)
    # The HTTP/JSON API, SSE and dashboard (docs/http.md); `enabled=False`: gRPC only.
    http: HttpSettings = field(default_factory=HttpSettings)
    # Trace links the dashboard shows (POLYFLEET_TRACE_URL_TEMPLATE).
    tracing: TracingSettings = field(default_factory=TracingSettings)
    # None: no metrics export (in-process tests); `python -m orchestrator` reads them.
    metrics: MetricsSettings | None = None
    # Seconds in-flight RPCs get to finish on shutdown.
    shutdown_grace: float = 5.0


@dataclass
class _Services:
    agent_executions: AgentExecutions
    workflow_executions: WorkflowExecutions
    registry: ExecutionRegistry
    # The CloudEvents stream: EventService, `emit`/`listen`, and `subscribe` for the
    # orchestrator's own followers of new events.
    events: CloudEvents
    # Every execution's changes (created, phase changed): FleetService.WatchExecutions.
    changes: ExecutionChanges


class Orchestrator:
    """One orchestrator process.

    ``run()`` serves until ``shutdown()`` (idempotent) is called, e.g. from a
    SIGTERM handler; shutdown drains RPCs, stops the workers, closes the store.

    Args:
        settings: The process's settings.
        temporal: A connected client; None connects from the environment.
        after_persist: Called with a new execution's ID between persisting it and starting
            its workflow: a hook for tests (tests/faults.py), never set in production.

    """

    def __init__(
        self,
        settings: OrchestratorSettings,
        temporal: Client | None = None,
        *,
        after_persist: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._temporal = temporal
        self._after_persist = after_persist
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._stopped = False
        self.address = settings.api.api_address
        self.db: store.Store | None = None
        self.workers: list[Worker] = []
        self.reconciler: Reconciler | None = None
        self.health: HealthMonitor | None = None
        # Read from the data directory when run() starts.
        self.store_id = ""
        self._certificates: CertificateFiles | None = None
        # The workflows' Temporal Schedules; set when run() starts.
        self.schedules: Schedules | None = None
        self._authenticator: Authenticator | None = None
        # The HTTP/JSON API and dashboard while HTTP is enabled; set when run() starts.
        self._http: HttpFrontend | None = None
        # Where the HTTP API listens (host:port) once ready; "" while HTTP is off.
        self.http_address = ""

    async def wait_ready(self) -> None:
        """Return once the API serves and the workers poll."""
        await self._ready.wait()

    async def run(self) -> None:
        """Serve until shutdown is requested.

        Raises:
            StartupRefusedError: Another orchestrator holds the data directory, polls the
                orchestrator queues for another store, or listens on the API address.
            ConfigError: Plaintext on a non-loopback address without
                ``POLYFLEET_API_ALLOW_INSECURE``, or a TLS file that cannot be read.

        """
        s = self.settings
        # First of all: plaintext only on loopback unless allowed, and TLS files that
        # cannot be read are a ConfigError naming the variable and the path.
        s.api.check_bind(self.address, s.auth.enabled)
        if s.http.enabled:
            s.api.check_bind(s.http.address, s.auth.enabled, "POLYFLEET_HTTP_ADDRESS")
        self._certificates = CertificateFiles(s.api) if s.api.server_tls else None
        if s.auth.mtls_roles and s.api.api_tls_client_ca is None:
            raise ConfigError(
                "POLYFLEET_AUTH_MTLS_ROLES needs POLYFLEET_API_TLS_CLIENT_CA: without it no "
                "client presents a certificate to take a role from"
            )
        # A token file or identity provider that cannot be used stops the start here.
        self._authenticator = Authenticator(s.auth) if s.auth.enabled else None
        # Before connecting to Temporal, whose runtime records into it (docs/observability.md).
        export = (
            setup_metrics(s.metrics, ORCHESTRATOR_SERVICE, ORCHESTRATOR_METRICS_PORT)
            if s.metrics is not None
            else None
        )
        try:
            await self._run_locked()
        finally:
            if export is not None:
                export.close()

    async def _run_locked(self) -> None:
        s = self.settings
        # Held until the process ends: a second orchestrator on this directory is refused
        # before it touches the store.
        with DataDirLock(s.store.data_dir):
            self.store_id = load_store_id(s.store.data_dir)
            db = await asyncio.to_thread(
                store.Store.open, s.store.data_dir / "store", s.store.store_map_size_bytes
            )
            self.db = db
            try:
                await self._serve(db)
            finally:
                if self._http is not None:
                    # Idempotent; releases the HTTP port whatever stopped the start.
                    await self._http.shutdown()
                    # The gRPC server is stopped: its Unix socket's directory can go.
                    self._http.close()
                await asyncio.to_thread(db.close)
                logger.info("orchestrator stopped")

    async def _serve(self, db: store.Store) -> None:
        s = self.settings
        queues = s.queues
        # Traced while tracing is on: workflow starts join the API call's trace, and the
        # workers trace workflows and activities (docs/observability.md, "Traces").
        temporal = traced(self._temporal or await connect())
        # Before any worker polls: our own pollers must not hide another store's.
        await ensure_queues_free(temporal, self._orchestrator_queues(), self.store_id)
        services = self._services(db, temporal)
        self.schedules = Schedules(db, temporal, queues.workflow_execution_orchestrator_task_queue)
        self._http = self._http_frontend(temporal) if s.http.enabled else None
        server, health_servicer = self._build_server(db, services, temporal)
        if self._http is not None:
            # Now, with the gRPC port: a taken port stops the start before anything runs.
            try:
                self._http.bind()
            except BaseException:
                await server.stop(None)
                raise
        update_status = StatusActivities(services.registry).update_status
        # A workflow's schedule starts ScheduledWorkflowStart, whose local activity creates
        # the execution (orchestrator/schedules.py).
        start_scheduled = ScheduleActivities(services.workflow_executions)
        workflow_activities: list[Callable[..., Any]] = [
            update_status,
            start_scheduled.start_scheduled_execution,
        ]
        identity = worker_identity(self.store_id)
        # No payload codec here: temporalio's six payload walks per activation change nothing.
        skip_noop_payload_walks()
        self.workers = [
            Worker(
                temporal,
                task_queue=task_queue,
                workflows=workflows,
                # Local only: no activity poller on the orchestrator queues, so an activity
                # sent there by mistake waits visibly instead of running here.
                activities=activities,
                no_remote_activities=True,
                workflow_runner=WORKFLOW_RUNNER,
                identity=identity,
            )
            for task_queue, workflows, activities in (
                (
                    queues.agent_execution_orchestrator_task_queue,
                    [AgentExecutionWorkflow],
                    [update_status],
                ),
                (
                    queues.workflow_execution_orchestrator_task_queue,
                    [WorkflowExecutionWorkflow, ScheduledWorkflowStart],
                    workflow_activities,
                ),
            )
        ]
        self.reconciler = Reconciler(
            temporal, [services.agent_executions, services.workflow_executions], s.reconciler
        )
        # Before the API serves, so no Create is between persisting and starting.
        await self.reconciler.reconcile(startup=True)
        await self._reconcile_schedules()
        await server.start()
        for name in (*_SERVICE_NAMES, ""):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        try:
            async with contextlib.AsyncExitStack() as stack:
                for worker in self.workers:
                    await stack.enter_async_context(worker)
                logger.info(
                    "orchestrator of store %s serving on %s, workflows on task queues %s and %s",
                    self.store_id,
                    self.address,
                    queues.agent_execution_orchestrator_task_queue,
                    queues.workflow_execution_orchestrator_task_queue,
                )
                periodic = asyncio.create_task(self.reconciler.run_forever())
                gauges = asyncio.create_task(
                    ExecutionGauges(
                        db,
                        {
                            "agent": services.agent_executions,
                            "workflow": services.workflow_executions,
                        },
                        s.executions.stuck_after,
                    ).run_forever()
                )
                # NOT_SERVING while Temporal or the store is unusable (orchestrator/health.py).
                self.health = HealthMonitor(
                    health_servicer,
                    (*_SERVICE_NAMES, ""),
                    {"temporal": temporal_check(temporal, 5.0), "store": store_check(db)},
                )
                monitor = asyncio.create_task(self.health.run_forever())
                # Workflows with `schedule.on` start on events (orchestrator/event_schedules.py).
                triggered = asyncio.create_task(
                    EventSchedules(db, services.events, services.workflow_executions).run_forever()
                )
                if self._http is not None:
                    # After the gRPC server it calls, before ready: tests use it at once.
                    await self._http.start()
                    self.http_address = self._http.address
                self._ready.set()
                try:
                    await self._stop.wait()
                finally:
                    triggered.cancel()
                    # Its creation in flight ends before the store closes.
                    await asyncio.wait([triggered])
                periodic.cancel()
                gauges.cancel()
                monitor.cancel()
                # HTTP first: its calls go through the gRPC server, which drains next.
                if self._http is not None:
                    await self._http.shutdown()
                # Stop taking new RPCs first, so clients fail over while workers drain.
                await health_servicer.enter_graceful_shutdown()
                await server.stop(s.shutdown_grace)
        finally:
            if self._http is not None:
                await self._http.shutdown()
            await server.stop(None)

    async def _reconcile_schedules(self) -> None:
        # Temporal's schedules follow the stored workflows (e.g. after a restore); a failure
        # is logged, not fatal: applying a workflow syncs its schedule again.
        if self.schedules is None:
            return
        try:
            await self.schedules.reconcile()
        except Exception:
            logger.exception("reconciling the workflows' schedules failed")

    def _orchestrator_queues(self) -> list[str]:
        queues = self.settings.queues
        return [
            queues.agent_execution_orchestrator_task_queue,
            queues.workflow_execution_orchestrator_task_queue,
        ]

    def _services(self, db: store.Store, temporal: Client) -> _Services:
        s = self.settings
        hub = EventHub()
        changes = ExecutionChanges()
        hook = self._after_persist
        agent_executions = AgentExecutions(
            db, temporal, hub, s.queues, s.executions, changes=changes, after_persist=hook
        )
        workflow_executions = WorkflowExecutions(
            db, temporal, hub, s.queues, s.executions, changes=changes, after_persist=hook
        )
        registry = ExecutionRegistry(
            {
                contract.AGENT_EXECUTION_ID_PREFIX: agent_executions,
                contract.WORKFLOW_EXECUTION_ID_PREFIX: workflow_executions,
            }
        )
        db.events.retention = s.store.store_event_retention
        return _Services(agent_executions, workflow_executions, registry, CloudEvents(db), changes)

    def _build_server(
        self, db: store.Store, services: _Services, temporal: Client
    ) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
        s = self.settings
        auth = AuthInterceptor(
            self._authenticator,
            RunnerBinding(temporal, db, s.auth.runner_binding_ttl.total_seconds()),
            WatchLimit(s.api.api_max_watches_per_caller),
            CreateRate(s.api.api_create_rate_per_caller, s.api.api_create_burst_per_caller),
        )
        server = grpc.aio.server(
            # No SO_REUSEPORT (gRPC's default on Linux): a second orchestrator on this port
            # would otherwise bind beside this one and take a share of the connections.
            options=[*channel_options(s.api), ("grpc.so_reuseport", 0)],
            # The call's span first, so it covers every check (and is a no-op while tracing
            # is off). Authentication and roles next, so an unauthenticated caller learns
            # nothing more; then undecodable bodies: INVALID_ARGUMENT, not gRPC's UNKNOWN.
            # Metrics before authentication, so refused calls count too.
            interceptors=[
                ApiTracingInterceptor(),
                MetricsInterceptor(),
                auth,
                MalformedRequestInterceptor(),
            ],
        )
        agent_pb2_grpc.add_AgentServiceServicer_to_server(
            AgentServicer(resources.agents(db)), server
        )
        workflow_pb2_grpc.add_WorkflowServiceServicer_to_server(
            WorkflowServicer(
                resources.workflows(
                    db,
                    self.schedules,
                    FunctionSources(
                        s.executions.dsl_function_sources,
                        timeout=s.executions.dsl_function_timeout.total_seconds(),
                        max_bytes=s.executions.dsl_function_max_bytes,
                    ),
                )
            ),
            server,
        )
        session_pb2_grpc.add_SessionServiceServicer_to_server(
            SessionServicer(resources.Sessions(db)), server
        )
        agent_execution_pb2_grpc.add_AgentExecutionServiceServicer_to_server(
            AgentExecutionServicer(services.agent_executions), server
        )
        workflow_execution_pb2_grpc.add_WorkflowExecutionServiceServicer_to_server(
            WorkflowExecutionServicer(services.workflow_executions), server
        )
        operations = RunnerOperations(db, services.agent_executions, services.workflow_executions)
        runner_pb2_grpc.add_RunnerServiceServicer_to_server(
            RunnerServicer(operations, services.registry, services.events), server
        )
        event_pb2_grpc.add_EventServiceServicer_to_server(EventServicer(services.events), server)
        fleet_pb2_grpc.add_FleetServiceServicer_to_server(
            FleetServicer(
                FleetStatus(db, temporal, s.queues, s.executions.stuck_after), services.changes
            ),
            server,
        )
        if self.schedules is not None:
            schedule_pb2_grpc.add_ScheduleServiceServicer_to_server(
                ScheduleServicer(self.schedules), server
            )
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        if s.api.api_reflection:
            reflection.enable_server_reflection(
                tuple(service.full_name for service in SERVED_SERVICES), server
            )
        if self._http is not None:
            # The HTTP gateway's private way in: same servicers, same interceptors.
            server.add_insecure_port(self._http.grpc_target)
        credentials = self._certificates.credentials() if self._certificates else None
        try:
            if credentials is not None:
                port = server.add_secure_port(self.address, credentials)
            else:
                port = server.add_insecure_port(self.address)
        except RuntimeError:
            port = 0
        if port == 0:
            raise ApiAddressInUseError(self.address, _bind_failure(self.address))
        host = self.address.rsplit(":", 1)[0]
        self.address = f"{host}:{port}"
        return server, health_servicer

    def _http_frontend(self, temporal: Client) -> HttpFrontend:
        s = self.settings
        dashboard = DashboardConfig(
            temporal_ui_url=s.http.temporal_ui_url,
            namespace=temporal.namespace,
            trace_url_template=s.tracing.url_template,
            stuck_after_seconds=s.executions.stuck_after.total_seconds(),
            auth_required=s.auth.enabled,
        )
        return HttpFrontend(
            s.http,
            API_SERVICES,
            s.api,
            dashboard,
            lambda: self.health is None or self.health.serving,
        )

    def shutdown(self) -> None:
        """Ask ``run()`` to drain and return; safe to call more than once."""
        if not self._stopped:
            self._stopped = True
            logger.info("orchestrator shutting down")
        self._stop.set()


def _bind_failure(address: str) -> str:
    """Say why ``address`` cannot be bound; gRPC itself only says that it failed."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As gRPC does, so that only a listener (not TIME_WAIT) counts as a conflict.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host or "0.0.0.0", int(port)))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return f"{reason} (is another orchestrator running on this port?)"
    return "gRPC could not bind it"
