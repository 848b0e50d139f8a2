"""Draining a runner: stop polling at once, let held activities finish within a grace.

Temporal's ``Worker.shutdown`` stops the worker's pollers at once and waits up to the
worker's ``graceful_shutdown_timeout`` for running activities, which keep heartbeating
meanwhile; only past it does it cancel them (the cancellation reaches each activity as a
worker-shutdown cancel). :func:`drain` shuts every worker down together, so no queue is
still polled while another drains, and logs the drain's start, what it held and its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from polyfleet.telemetry.metrics import ACTIVITIES_RUNNING, RUNNER_DRAINING

logger = logging.getLogger(__name__)


class InFlight(Interceptor):
    """A worker interceptor that counts the activities running in this process."""

    def __init__(self) -> None:
        self.count = 0

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap every activity so it is counted while it runs."""
        return _Counted(next, self)


class _Counted(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, in_flight: InFlight) -> None:
        super().__init__(next)
        self._in_flight = in_flight

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        self._in_flight.count += 1
        activity_type = activity.info().activity_type
        ACTIVITIES_RUNNING.add(1, activity_type=activity_type)
        try:
            return await self.next.execute_activity(input)
        finally:
            self._in_flight.count -= 1
            ACTIVITIES_RUNNING.add(-1, activity_type=activity_type)


async def drain(workers: Sequence[Worker], in_flight: InFlight, grace: float) -> None:
    """Stop every worker's polling at once and wait for its activities, up to ``grace`` s.

    Returns when every worker has shut down: its activities finished, or were cancelled
    once the grace had passed and then ended.
    """
    started = time.monotonic()
    RUNNER_DRAINING.set(1)
    logger.info(
        "runner draining: polling stopped, %d activities in flight, grace %.0f s",
        in_flight.count,
        grace,
    )
    overdue = asyncio.create_task(_warn_when_overdue(in_flight, grace))
    try:
        await asyncio.gather(*(worker.shutdown() for worker in workers))
    finally:
        overdue.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await overdue
    logger.info("runner drained in %.1f s", time.monotonic() - started)


async def _warn_when_overdue(in_flight: InFlight, grace: float) -> None:
    await asyncio.sleep(grace)
    if in_flight.count:
        logger.warning(
            "runner drain grace of %.0f s passed: cancelling %d activities still in flight",
            grace,
            in_flight.count,
        )
