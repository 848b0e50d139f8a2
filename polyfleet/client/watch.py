"""Following an execution's event log with automatic resume, and waiting for its end.

Both kinds of execution have the same lifecycle and the same event log, so one watch and
one wait serve both, over :class:`ExecutionCalls`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Generic, Protocol, TypeVar

import grpc

from polyfleet.client.errors import PolyfleetError, WaitTimeoutError, WatchError
from polyfleet.contract import Execution, is_terminal
from polyfleet.v1 import common_pb2

logger = logging.getLogger(__name__)

# A watch that drops (orchestrator restart, network blip) resumes from the last event
# seen, so nothing is lost; these bound how long it keeps trying.
WATCH_RECONNECTS = 6
WATCH_BACKOFF_SECONDS = 0.5
_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL})
# How often a wait for a terminal phase looks at the execution.
POLL_INTERVAL = 0.25

E = TypeVar("E", bound=Execution)
_E_co = TypeVar("_E_co", bound=Execution, covariant=True)


class ExecutionCalls(Protocol[_E_co]):
    """The calls that read, follow and cancel one kind of execution."""

    async def get(self, execution_id: str) -> _E_co:
        """Fetch one execution."""
        ...

    async def cancel(self, execution_id: str) -> _E_co:
        """Ask for an execution to be cancelled; return it right after the request."""
        ...

    def events(
        self, execution_id: str, after_sequence: int = 0
    ) -> AsyncIterator[common_pb2.ExecutionEvent]:
        """Stream the execution's events after a sequence number, until the stream ends."""
        ...


class ExecutionWatch(Generic[E]):
    """An execution's events after a sequence number, live, until it reaches a terminal phase.

    Iterate it with ``async for``. When the stream breaks (UNAVAILABLE, INTERNAL, or it ends
    before the execution did) the watch reconnects after the last event seen, with backoff,
    so a restart of the orchestrator neither loses nor repeats an event. Once iteration
    ends, :attr:`execution` holds the execution in its terminal phase.

    Attributes:
        execution_id: The execution followed.
        sequence: Sequence number of the last event yielded (or the starting point).
        execution: The terminal execution, once iteration has ended; None before.

    """

    def __init__(
        self,
        calls: ExecutionCalls[E],
        execution_id: str,
        after_sequence: int = 0,
        *,
        reconnects: int | None = None,
        backoff: float | None = None,
    ) -> None:
        """Prepare a watch; nothing is called until it is iterated.

        Args:
            calls: The calls of the execution's kind.
            execution_id: The execution to follow.
            after_sequence: Yield only events after this sequence number.
            reconnects: Consecutive broken streams tolerated before giving up
                (default :data:`WATCH_RECONNECTS`).
            backoff: Pause before the first reconnect, doubled for each further one
                (default :data:`WATCH_BACKOFF_SECONDS`).

        """
        self._calls = calls
        self.execution_id = execution_id
        self.sequence = after_sequence
        self.execution: E | None = None
        # Module defaults are read now, not at import, so tests can shorten them.
        self._reconnects = WATCH_RECONNECTS if reconnects is None else reconnects
        self._backoff = WATCH_BACKOFF_SECONDS if backoff is None else backoff

    def __aiter__(self) -> AsyncGenerator[common_pb2.ExecutionEvent, None]:
        """The events, resuming as needed (see the class)."""
        return self._events()

    async def _events(self) -> AsyncGenerator[common_pb2.ExecutionEvent, None]:
        failures = 0
        while True:
            try:
                async for event in self._calls.events(self.execution_id, self.sequence):
                    # A resumed stream starts after `sequence`; the check guards a server
                    # that replays, so the caller never sees an event twice.
                    if event.sequence and event.sequence <= self.sequence:
                        continue
                    self.sequence = max(self.sequence, event.sequence)
                    failures = 0
                    yield event
                execution = await self._calls.get(self.execution_id)
                if is_terminal(execution.status.phase):
                    self.execution = execution
                    return
                problem = "the watch ended before the execution finished"
            except PolyfleetError as exc:
                if exc.code not in _RETRYABLE:
                    raise
                problem = str(exc)
            failures += 1
            if failures > self._reconnects:
                raise WatchError(f"gave up watching {self.execution_id}: {problem}")
            logger.info(
                "watch of %s broke (%s); resuming after %d",
                self.execution_id,
                problem,
                self.sequence,
                extra={"execution_id": self.execution_id},
            )
            await asyncio.sleep(self._backoff * 2 ** (failures - 1))

    async def result(self) -> E:
        """Return the terminal execution, first consuming the events if not yet done.

        Returns:
            The execution in its terminal phase.

        Raises:
            PolyfleetError: A call failed in a way retrying does not fix.
            WatchError: The watch kept breaking.

        """
        if self.execution is None:
            async for _ in self:
                pass
        assert self.execution is not None  # set whenever iteration ends without an error
        return self.execution


async def wait_terminal(
    calls: ExecutionCalls[E],
    execution_id: str,
    timeout: float | None = None,  # noqa: ASYNC109 - named as in Temporal's SDK
    *,
    poll_interval: float | None = None,
) -> E:
    """Poll an execution until it reaches a terminal phase.

    Args:
        calls: The calls of the execution's kind.
        execution_id: Its ID.
        timeout: Give up after this many seconds; None waits as long as it takes.
        poll_interval: Pause between two reads (default :data:`POLL_INTERVAL`).

    Returns:
        The execution in its terminal phase.

    Raises:
        WaitTimeoutError: It was not terminal within ``timeout``; it keeps running.
        PolyfleetError: A read failed.

    """
    interval = POLL_INTERVAL if poll_interval is None else poll_interval
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        execution = await calls.get(execution_id)
        if is_terminal(execution.status.phase):
            return execution
        if deadline is not None and loop.time() >= deadline:
            assert timeout is not None
            raise WaitTimeoutError(execution_id, execution.status.phase, timeout)
        await asyncio.sleep(interval)
