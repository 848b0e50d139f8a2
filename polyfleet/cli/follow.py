"""Rendering an execution's progress live, for ``run --follow`` and ``executions watch``.

Agent executions (``aex-…``) and workflow executions (``wex-…``) have the same lifecycle
and the same event log, so one printer serves both. Watching itself, with its resume after
a broken stream, is the client's (:class:`polyfleet.client.ExecutionWatch`).
"""

from __future__ import annotations

import asyncio
from typing import TextIO, TypeVar

from polyfleet.cli.progress import ProgressPrinter
from polyfleet.client import Execution, ExecutionCalls, ExecutionWatch, PolyfleetError

_E = TypeVar("_E", bound=Execution)


async def watch_execution(
    calls: ExecutionCalls[_E],
    execution_id: str,
    printer: ProgressPrinter,
    *,
    after_sequence: int = 0,
) -> _E:
    """Render an execution's progress live until it reaches a terminal phase.

    Args:
        calls: The calls of the execution's kind (e.g. ``client.executions(id)``).
        execution_id: The execution to follow.
        printer: Receives every event and finally the outcome.
        after_sequence: Render only events after this sequence number.

    Returns:
        The execution in its terminal phase.

    Raises:
        PolyfleetError: A call failed in a way retrying does not fix, or the watch kept
            breaking before the execution finished (``WatchError``).

    """
    watch = ExecutionWatch(calls, execution_id, after_sequence)
    try:
        async for event in watch:
            printer.event(event)
    except PolyfleetError:
        printer.end_line()
        raise
    final = await watch.result()
    printer.finish(final)
    return final


async def follow(
    calls: ExecutionCalls[_E],
    execution_id: str,
    printer: ProgressPrinter,
    err: TextIO,
    *,
    after_sequence: int = 0,
) -> _E:
    """Watch an execution as :func:`watch_execution` does, for a command's foreground.

    Args:
        calls: The calls of the execution's kind (e.g. ``client.executions(id)``).
        execution_id: The execution to follow.
        printer: Receives every event and finally the outcome.
        err: Where to say, on Ctrl-C, how to pick the watch up again.
        after_sequence: Render only events after this sequence number.

    Returns:
        The execution in its terminal phase.

    """
    try:
        return await watch_execution(calls, execution_id, printer, after_sequence=after_sequence)
    except asyncio.CancelledError:
        # Ctrl-C stops watching, not the execution; say how to pick it up again.
        printer.end_line()
        print(
            f"stopped watching; {execution_id} keeps running "
            f"(polyfleet executions watch {execution_id})",
            file=err,
        )
        raise
