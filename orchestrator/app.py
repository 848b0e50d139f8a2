"""The orchestrator process: gRPC API, embedded store and workflow-only Temporal worker."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from temporalio.client import Client
from temporalio.worker import Worker

import store
from orchestrator.activities import StatusActivities
from orchestrator.events import EventHub
from orchestrator.executions import AgentExecutions
from orchestrator.resources import Agents, Sessions
from orchestrator.servicers.agent_executions import AgentExecutionServicer
from orchestrator.servicers.resources import AgentServicer, SessionServicer
from orchestrator.servicers.runner import RunnerServicer
from orchestrator.threads import RunnerOperations
from orchestrator.workflows import WORKFLOWS
from polyfleet.channel import channel_options
from polyfleet.config import ApiSettings, ExecutionSettings, StoreSettings, TaskQueueSettings
from polyfleet.temporal import connect
from polyfleet.v1 import (
    agent_execution_pb2,
    agent_execution_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    runner_pb2,
    runner_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
)

logger = logging.getLogger(__name__)

_SERVICE_NAMES = (
    agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
    session_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name,
    agent_execution_pb2.DESCRIPTOR.services_by_name["AgentExecutionService"].full_name,
    runner_pb2.DESCRIPTOR.services_by_name["RunnerService"].full_name,
)


@dataclass
class OrchestratorSettings:
    """Everything the orchestrator reads from the environment, one object per subsystem."""

    api: ApiSettings = field(default_factory=ApiSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    queues: TaskQueueSettings = field(default_factory=TaskQueueSettings)
    executions: ExecutionSettings = field(default_factory=ExecutionSettings)
    # Seconds in-flight RPCs get to finish on shutdown.
    shutdown_grace: float = 5.0


class Orchestrator:
    """One orchestrator process.

    ``run()`` serves until ``shutdown()`` (idempotent) is called, e.g. from a
    SIGTERM handler; shutdown drains RPCs, stops the worker, closes the store.
    """

    def __init__(self, settings: OrchestratorSettings, temporal: Client | None = None) -> None:
        self.settings = settings
        self._temporal = temporal
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._stopped = False
        self.address = settings.api.api_address
        self.db: store.Store | None = None
        self.worker: Worker | None = None

    async def wait_ready(self) -> None:
        """Return once the API serves and the worker polls."""
        await self._ready.wait()

    async def run(self) -> None:
        """Serve until shutdown is requested."""
        s = self.settings
        db = await asyncio.to_thread(
            store.Store.open, s.store.data_dir / "store", s.store.store_map_size_bytes
        )
        self.db = db
        try:
            temporal = self._temporal or await connect()
            hub = EventHub()
            executions = AgentExecutions(db, temporal, hub, s.queues, s.executions)
            server, health_servicer = self._build_server(db, executions)
            self.worker = worker = Worker(
                temporal,
                task_queue=s.queues.agent_execution_orchestrator_task_queue,
                workflows=WORKFLOWS,
                activities=[StatusActivities(executions).update_status],
            )
            await server.start()
            for name in (*_SERVICE_NAMES, ""):
                await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
            try:
                async with worker:
                    logger.info(
                        "orchestrator serving on %s, workflows on task queue %s",
                        self.address,
                        s.queues.agent_execution_orchestrator_task_queue,
                    )
                    self._ready.set()
                    await self._stop.wait()
                    # Stop taking new RPCs first, so clients fail over while the worker drains.
                    await health_servicer.enter_graceful_shutdown()
                    await server.stop(s.shutdown_grace)
            finally:
                await server.stop(None)
        finally:
            await asyncio.to_thread(db.close)
            logger.info("orchestrator stopped")

    def _build_server(
        self, db: store.Store, executions: AgentExecutions
    ) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
        server = grpc.aio.server(options=channel_options(self.settings.api))
        agent_pb2_grpc.add_AgentServiceServicer_to_server(AgentServicer(Agents(db)), server)
        session_pb2_grpc.add_SessionServiceServicer_to_server(SessionServicer(Sessions(db)), server)
        agent_execution_pb2_grpc.add_AgentExecutionServiceServicer_to_server(
            AgentExecutionServicer(executions), server
        )
        runner_pb2_grpc.add_RunnerServiceServicer_to_server(
            RunnerServicer(RunnerOperations(db, executions), executions), server
        )
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (*_SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        port = server.add_insecure_port(self.address)
        if port == 0:
            raise OSError(f"cannot listen on POLYFLEET_API_ADDRESS={self.address}")
        host = self.address.rsplit(":", 1)[0]
        self.address = f"{host}:{port}"
        return server, health_servicer

    def shutdown(self) -> None:
        """Ask ``run()`` to drain and return; safe to call more than once."""
        if not self._stopped:
            self._stopped = True
            logger.info("orchestrator shutting down")
        self._stop.set()
