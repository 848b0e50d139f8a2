"""Background heartbeating for long activities."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from temporalio import activity


async def _beat(interval: float) -> None:
    while True:
        activity.heartbeat()
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def heartbeating(interval: timedelta) -> AsyncIterator[None]:
    """Heartbeat every ``interval`` while the body runs.

    Heartbeats are how a runner learns its activity was cancelled, and how
    Temporal learns the runner is alive; the body keeps its own pace.
    """
    task = asyncio.create_task(_beat(interval.total_seconds()))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
