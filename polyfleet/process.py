"""Running a polyfleet process until SIGTERM/Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from typing import Protocol

from polyfleet.config import ConfigError, warn_unknown_variables
from polyfleet.logs import configure_logging

# Exit status when a setting is invalid (sysexits' EX_CONFIG).
EXIT_CONFIG = 78

logger = logging.getLogger(__name__)


class Process(Protocol):
    """A long-running process: ``run()`` serves until ``shutdown()`` is called."""

    async def run(self) -> None: ...  # noqa: D102
    def shutdown(self) -> None: ...  # noqa: D102


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
        await process.run()

    try:
        configure_logging()
        warn_unknown_variables(os.environ)
        asyncio.run(main())
    except ConfigError as exc:
        logger.error("invalid configuration: %s", exc)
        raise SystemExit(EXIT_CONFIG) from None
