"""Wake-ups for watchers of an execution's event log.

The event log in LMDB is the only source of events; the hub only tells
watchers *that* something was appended, so a watcher that misses a wake-up
loses nothing: it re-reads the log from its last sequence number.
"""

from __future__ import annotations

import asyncio


class EventHub:
    """Per-execution wake-up signals, used on one asyncio event loop."""

    def __init__(self) -> None:
        self._signals: dict[str, asyncio.Event] = {}

    def signal(self, execution_id: str) -> asyncio.Event:
        """The event that fires on the next publish for ``execution_id``.

        Take it *before* reading the log: a publish between the read and the wait
        then still wakes the watcher.
        """
        event = self._signals.get(execution_id)
        if event is None:
            event = self._signals[execution_id] = asyncio.Event()
        return event

    def publish(self, execution_id: str) -> None:
        """Wake every watcher of ``execution_id``."""
        event = self._signals.pop(execution_id, None)
        if event is not None:
            event.set()
