"""Background heartbeating for long activities."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio import activity


async def _beat(interval: float, details: Callable[[], Sequence[Any]]) -> None:
    while True:
        # First after one interval, not at the start: most activities are over by then,
        # and a heartbeat costs the runner and the Temporal server a call each.
        await asyncio.sleep(interval)
        activity.heartbeat(*details())


def _no_details() -> Sequence[Any]:
    return ()


@contextlib.asynccontextmanager
async def heartbeating(
    interval: timedelta, details: Callable[[], Sequence[Any]] = _no_details
) -> AsyncIterator[None]:
    """Heartbeat every ``interval`` while the body runs, the first one ``interval`` in.

    Heartbeats are how a runner learns its activity was cancelled, and how
    Temporal learns the runner is alive; the body keeps its own pace. Each heartbeat
    carries ``details()`` (a heartbeat replaces the previous details, so a checkpoint
    must be repeated in every one). A body shorter than ``interval`` sends none, and a
    longer one still learns of a cancellation within ``interval`` (plus the SDK's
    throttle), as with a heartbeat at the start.
    """
    task = asyncio.create_task(_beat(interval.total_seconds(), details))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
