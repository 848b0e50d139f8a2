"""The change stream of every execution (FleetService.WatchExecutions).

An in-memory feed on the orchestrator's event loop: the execution services publish a
change when they persist an execution (CREATED) and whenever a stored phase changes
(PHASE_CHANGED); followers read it from a bounded ring by position. Unlike an execution's
event log, the feed is not stored: a follower asking for changes it no longer holds (older
than the ring, or from before this process) gets a RESET and lists again. Publishing never
waits for a follower; a follower the ring laps gets a RESET instead of a silent gap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

import store
from orchestrator.errors import InvalidArgumentError
from polyfleet.contract import Execution
from polyfleet.telemetry.metrics import WATCH_SUBSCRIBERS
from polyfleet.v1 import agent_execution_pb2, common_pb2, fleet_pb2

# Changes held for followers that resume or fall behind (about the last few minutes of a
# busy fleet); each holds an execution in its BASIC view.
DEFAULT_CAPACITY = 10_000
# A process's sequences start at its start time in milliseconds times this: those of a
# restarted orchestrator are greater than its predecessor's as long as that one published
# fewer than 1,000 changes per millisecond it ran, and they stay below 2**53 (until the
# year 2255), so JavaScript clients such as the dashboard hold them exactly.
_SEQUENCES_PER_MS = 1000

ExecutionChange = fleet_pb2.ExecutionChange
ChangeType = fleet_pb2.ExecutionChangeType


class ExecutionChanges:
    """The executions' changes of this process, numbered, the latest ones held in a ring.

    Used on one asyncio event loop (publishers are the execution services' coroutines).

    Args:
        capacity: How many of the latest changes are held for followers.
        start_ms: The process's start, in Unix milliseconds (now when omitted): sequences
            of this feed are greater than ``start_ms * 1000``.

    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, start_ms: int | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be positive, not {capacity}")
        start = time.time_ns() // 1_000_000 if start_ms is None else start_ms
        # Sequences of this process are base + 1, base + 2, ...: a change's position in the
        # ring follows from its sequence.
        self._base = start * _SEQUENCES_PER_MS
        self._last = self._base
        self._ring: list[ExecutionChange | None] = [None] * capacity
        self._published = asyncio.Event()

    @property
    def last_sequence(self) -> int:
        """The sequence of the latest change (before the first: the feed's base)."""
        return self._last

    def _oldest_held(self) -> int:
        """The sequence of the oldest change still held (``last + 1`` when none is)."""
        return max(self._base + 1, self._last - len(self._ring) + 1)

    def publish(self, change_type: ChangeType.ValueType, execution: Execution) -> ExecutionChange:
        """Number a change of ``execution``, hold it and wake the followers.

        Args:
            change_type: CREATED or PHASE_CHANGED.
            execution: The execution after the change, in any view; the change carries a
                copy in the BASIC view.

        Returns:
            The change as followers get it (not to be modified).

        """
        self._last += 1
        change = ExecutionChange(sequence=self._last, type=change_type)
        # Trimmed as List trims (store/views.py), on the change's own copy.
        if isinstance(execution, agent_execution_pb2.AgentExecution):
            change.agent_execution.CopyFrom(execution)
            store.apply_view(change.agent_execution, common_pb2.EXECUTION_VIEW_BASIC)
        else:
            change.workflow_execution.CopyFrom(execution)
            store.apply_view(change.workflow_execution, common_pb2.EXECUTION_VIEW_BASIC)
        self._ring[self._last % len(self._ring)] = change
        published, self._published = self._published, asyncio.Event()
        published.set()
        return change

    @staticmethod
    def _reset(position: int) -> ExecutionChange:
        # Carries the follower's new position: what follows it is what the stream sends next.
        return ExecutionChange(sequence=position, type=fleet_pb2.EXECUTION_CHANGE_TYPE_RESET)

    def follow(self, after_sequence: int = 0) -> AsyncGenerator[ExecutionChange, None]:
        """The changes after ``after_sequence``, then live ones, until cancelled.

        The request is checked, and the position taken, now: "from now on" is from this
        call, even if iteration starts later.

        Args:
            after_sequence: 0 for live changes only; otherwise the sequence of the last
                change the caller has. When the changes after it are no longer held (older
                than the ring, or not of this process), a RESET comes first and the stream
                goes on from the latest change.

        Returns:
            An async generator of the changes in sequence order; a RESET (without an
            execution) again whenever its follower falls so far behind that the ring has
            dropped its next change.

        Raises:
            InvalidArgumentError: ``after_sequence`` is negative.

        """
        if after_sequence < 0:
            raise InvalidArgumentError("after_sequence", "must not be negative")
        if after_sequence == 0:
            return self._follow(self._last, reset=False)
        held = self._oldest_held() - 1 <= after_sequence <= self._last
        return self._follow(after_sequence if held else self._last, reset=not held)

    async def _follow(self, position: int, *, reset: bool) -> AsyncGenerator[ExecutionChange, None]:
        WATCH_SUBSCRIBERS.add(1)
        try:
            if reset:
                yield self._reset(position)
            while True:
                # Taken before comparing: a publish while this follower is suspended in a
                # yield replaces it, so the loop re-reads instead of waiting.
                published = self._published
                if position >= self._last:
                    await published.wait()
                    continue
                if position < self._oldest_held() - 1:
                    # Lapped by the ring while it was slow: its next change is gone.
                    position = self._last
                    yield self._reset(position)
                    continue
                position += 1
                change = self._ring[position % len(self._ring)]
                assert change is not None and change.sequence == position
                yield change
        finally:
            WATCH_SUBSCRIBERS.add(-1)
