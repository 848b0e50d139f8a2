"""Running a polyfleet process until SIGTERM/Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Protocol

from polyfleet.logs import configure_logging


class Process(Protocol):
    """A long-running process: ``run()`` serves until ``shutdown()`` is called."""

    async def run(self) -> None: ...  # noqa: D102
    def shutdown(self) -> None: ...  # noqa: D102


def serve(factory: Callable[[], Process]) -> None:
    """Configure logging, run the process, and drain it gracefully on SIGTERM/SIGINT."""
    configure_logging()

    async def main() -> None:
        process = factory()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, process.shutdown)
        await process.run()

    asyncio.run(main())
