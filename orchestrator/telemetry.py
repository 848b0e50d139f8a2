"""The orchestrator's metrics that are not recorded where a thing happens.

:class:`MetricsInterceptor` counts and times every API call by method and status code (first
in the server's interceptors, so refusals count too); :class:`ExecutionGauges` samples the
store's phase index for the executions in each non-terminal phase and the stale ones. The
metrics themselves are defined in :mod:`polyfleet.telemetry.metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any

import grpc

import store
from orchestrator.executions import Executions
from orchestrator.servicers.wrapping import Context, WrappingInterceptor, wrap_handler
from polyfleet import contract
from polyfleet.telemetry import metrics
from polyfleet.telemetry.metrics import (
    API_REQUEST_DURATION,
    API_REQUESTS,
    EXECUTIONS_ACTIVE,
    EXECUTIONS_STALE,
)
from polyfleet.v1 import common_pb2

logger = logging.getLogger(__name__)

#: Seconds between two samples of the phase gauges.
SAMPLE_INTERVAL = 15.0
#: The phases the gauge samples: the terminal ones only grow (their counter is
#: polyfleet.executions.ended), and counting them would read ever more index keys.
ACTIVE_PHASES = (
    common_pb2.EXECUTION_PHASE_PENDING,
    common_pb2.EXECUTION_PHASE_RUNNING,
)


def _code(context: Any, failure: BaseException | None) -> str:
    code = context.code()
    if code is None:
        code = grpc.StatusCode.UNKNOWN if failure is not None else grpc.StatusCode.OK
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return grpc.StatusCode(code).name if isinstance(code, tuple) else str(code)


class MetricsInterceptor(WrappingInterceptor):
    """polyfleet.api.requests and polyfleet.api.request.duration for every served method.

    Unknown methods (no handler) are not counted: their names are the callers' and unbounded.
    """

    def wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Wrap the method's handler to time it and record its status code."""
        if not metrics.enabled():
            return handler
        return wrap_handler(handler, lambda _request, context: _Timed(method, context))


class _Timed(contextlib.AbstractAsyncContextManager[None]):
    """Times one call; a class, cheaper per call than a generator-based context manager."""

    __slots__ = ("_context", "_method", "_started")

    def __init__(self, method: str, context: Context) -> None:
        self._method = method
        self._context = context

    async def __aenter__(self) -> None:
        self._started = time.perf_counter()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _record(self._method, self._context, exc, self._started)


def _record(method: str, context: Any, failure: BaseException | None, started: float) -> None:
    if isinstance(failure, asyncio.CancelledError):
        code = grpc.StatusCode.CANCELLED.name
    else:
        code = _code(context, failure)
    API_REQUESTS.add(1, method=method, code=code)
    API_REQUEST_DURATION.record(time.perf_counter() - started, method=method, code=code)


class ExecutionGauges:
    """Samples polyfleet.executions.active and polyfleet.executions.stale from the store.

    Args:
        db: The store.
        services: The execution services by kind label (``agent``, ``workflow``).
        stale_after: A RUNNING execution without any update for longer than this is stale
            (``POLYFLEET_STUCK_AFTER``, the same threshold as ``polyfleet fleet status``).

    """

    def __init__(
        self, db: store.Store, services: Mapping[str, Executions[Any, Any]], stale_after: timedelta
    ) -> None:
        self._repositories: dict[str, Any] = {
            "agent": db.agent_executions,
            "workflow": db.workflow_executions,
        }
        self._services = services
        self._stale_after = stale_after

    async def sample(self) -> None:
        """Set the gauges once (nothing to do while the process exports no metrics)."""
        if not metrics.enabled():
            return
        cutoff_ns = time.time_ns() - int(self._stale_after.total_seconds() * 1e9)
        for kind, service in self._services.items():
            for phase in ACTIVE_PHASES:
                count = await self._repositories[kind].count("phase", phase)
                EXECUTIONS_ACTIVE.set(count, kind=kind, phase=contract.phase_name(phase))
            running = await service.list_all({"phase": common_pb2.EXECUTION_PHASE_RUNNING})
            stale = sum(1 for e in running if e.update_time.ToNanoseconds() < cutoff_ns)
            EXECUTIONS_STALE.set(stale, kind=kind)

    async def run_forever(self, interval: float = SAMPLE_INTERVAL) -> None:
        """Sample every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.sample()
            except store.StoreError as exc:
                logger.warning("could not sample the execution gauges: %s", exc)
            await asyncio.sleep(interval)
