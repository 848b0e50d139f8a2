"""Running a polyfleet process until SIGTERM/Ctrl-C."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import NoReturn, Protocol

from polyfleet.config import ConfigError, ProcessSettings, warn_unknown_variables
from polyfleet.logs import configure_logging

# Exit status when a setting is invalid (sysexits' EX_CONFIG).
EXIT_CONFIG = 78

logger = logging.getLogger(__name__)

# Allocations (less deallocations) between two collections of the youngest generation once a
# process serves; CPython's default is 700. See :func:`freeze_when_ready`.
YOUNG_COLLECTION_THRESHOLD = 10_000


class Process(Protocol):
    """A long-running process: ``run()`` serves until ``shutdown()`` is called."""

    async def run(self) -> None: ...  # noqa: D102
    async def wait_ready(self) -> None: ...  # noqa: D102
    def shutdown(self) -> None: ...  # noqa: D102


async def freeze_when_ready(process: Process) -> None:
    """Move everything alive once ``process`` is ready out of the garbage collector's sight.

    What a process holds once it serves (modules, settings, clients, servers, workers) lives
    until it exits, yet every full collection would walk it again. ``gc.freeze()`` moves
    them to the permanent generation; later garbage is collected as before. Measured on an
    in-process fleet: the collector's CPU per execution fell from 4.3 to 2.8 ms without
    tracing and from 8.0 to 4.2 ms with it (finished spans wait for export, so tracing
    triggers more collections).

    Then the youngest generation is collected every :data:`YOUNG_COLLECTION_THRESHOLD`
    allocations instead of every 700. A serving process's objects mostly live for one
    request or one task; collected more often, they are walked while still alive and
    promoted, and each promotion brings the next older collection closer. Measured in the
    observability benchmark (600 executions, orchestrator and runner, from ready to
    stop): the time in the collector per execution fell from 0.21 to 0.10 ms with observability
    off and from 0.37 to 0.15 ms with it; a young collection then takes about 8 ms in the
    orchestrator (8 of them in 600 executions).
    """
    await process.wait_ready()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])


def event_loop_factory(
    settings: ProcessSettings | None = None,
) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop a serving process runs on, as ``POLYFLEET_EVENT_LOOP`` says.

    The standard library's by default. uvloop is an option for CPU-bound deployments: in
    the fleet benchmark it took 1.2-3.3 ms of CPU per agent execution off the orchestrator
    and 0.4-1.0 ms off the runner, where gRPC's and Temporal's callbacks pass through the
    loop several times per RPC and activity; metrics and traces cost as much as before, so
    they become a larger share (docs/benchmarks.md).

    Returns:
        uvloop's loop factory when asked for and installed, else None (the standard loop;
        a missing uvloop, e.g. on Windows, is logged).

    Raises:
        ConfigError: ``POLYFLEET_EVENT_LOOP`` is neither ``asyncio`` nor ``uvloop``.

    """
    if (settings or ProcessSettings()).event_loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        logger.warning(
            "POLYFLEET_EVENT_LOOP=uvloop, but uvloop is not installed: "
            "running on the standard asyncio event loop"
        )
        return None
    return uvloop.new_event_loop


def serve(factory: Callable[[], Process]) -> None:
    """Configure logging, run the process, and drain it gracefully on SIGTERM/SIGINT.

    An invalid setting (including one ``factory`` reads) ends the process with one line
    naming its variable and exit status :data:`EXIT_CONFIG`, not with a traceback.
    """

    async def main() -> None:
        process = factory()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, process.shutdown)
        frozen = asyncio.create_task(freeze_when_ready(process))
        try:
            await process.run()
        finally:
            frozen.cancel()

    try:
        configure_logging()
        warn_unknown_variables(os.environ)
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(main())
    except ConfigError as exc:
        logger.error("invalid configuration: %s", exc)
        raise SystemExit(EXIT_CONFIG) from None
    leave(0)


def leave(status: int) -> NoReturn:
    """End a process that has shut down: exit handlers, flushed output, no interpreter teardown.

    Temporal's runtime keeps native threads that call into Python and has no way to stop
    them. The interpreter's teardown after a clean shutdown can race them: an abort
    (``PyGILState_Release: thread state ... must be current``) or a segmentation fault: once
    in fifteen exits of a script that connected a client, with a runtime given a metric
    buffer and with one given a Prometheus endpoint alike. The status then says the process
    failed when it had drained everything. So the exit handlers run (OpenTelemetry's
    providers flush there), logging and the standard streams are flushed, and the process
    ends without the teardown.
    """
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)
