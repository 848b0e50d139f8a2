"""The orchestrator's gRPC health: SERVING only while Temporal and the store are usable.

:class:`HealthMonitor` runs its checks every few seconds (a DescribeNamespace on Temporal, a
one-item read of the store) and sets every service of the ``grpc.health.v1`` servicer to
NOT_SERVING when one fails, back to SERVING when all pass again. Probes (Kubernetes' gRPC
probe, load balancers, a runner's ``/readyz``) then see what the process can actually do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta

from grpc_health.v1 import health, health_pb2
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

import store

logger = logging.getLogger(__name__)

Check = Callable[[], Awaitable[object]]
"""A dependency check: returns when the dependency is usable, raises when it is not."""

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def temporal_check(temporal: Client, timeout: float) -> Check:
    """DescribeNamespace on the client's namespace: works on a cluster and on Temporal Cloud."""

    async def check() -> object:
        return await temporal.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=temporal.namespace),
            timeout=timedelta(seconds=timeout),
        )

    return check


def store_check(db: store.Store) -> Check:
    """A read transaction of at most one agent."""

    async def check() -> object:
        return await db.agents.list(page_size=1)

    return check


class HealthMonitor:
    """Keeps the health servicer's status in step with the dependency checks.

    Args:
        servicer: The gRPC health servicer whose statuses it sets.
        services: The service names to set ("" for the server as a whole included).
        checks: Each dependency's check, by a name used in the log.
        interval: Seconds between rounds of checks.
        timeout: Seconds a check may take before it counts as failed.

    """

    def __init__(
        self,
        servicer: health.aio.HealthServicer,
        services: Sequence[str],
        checks: Mapping[str, Check],
        *,
        interval: float = 5.0,
        timeout: float = 5.0,
    ) -> None:
        self._servicer = servicer
        self._services = tuple(services)
        self._checks = dict(checks)
        self._interval = interval
        self._timeout = timeout
        self.serving = True

    async def check_once(self) -> bool:
        """Run every check and set the status; True when all passed."""
        failures = {}
        for name, check in self._checks.items():
            try:
                await asyncio.wait_for(check(), self._timeout)
            except Exception as err:  # noqa: BLE001 - any failure makes the process unusable
                failures[name] = _describe(err)
        serving = not failures
        if serving != self.serving:
            if serving:
                logger.info("orchestrator health: SERVING again")
            else:
                logger.warning(
                    "orchestrator health: NOT_SERVING: %s",
                    "; ".join(f"{name}: {why}" for name, why in failures.items()),
                )
        self.serving = serving
        for service in self._services:
            await self._servicer.set(service, SERVING if serving else NOT_SERVING)
        return serving

    async def run_forever(self) -> None:
        """Check every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            await self.check_once()


def _describe(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return "no answer in time"
    # The type and the first line only: enough to act on, never a request's content.
    text = str(err).splitlines()[0][:200] if str(err) else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
