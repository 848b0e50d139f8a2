"""`python -m orchestrator`: run one orchestrator process until SIGTERM/Ctrl-C."""

from __future__ import annotations

import asyncio
import signal

from orchestrator.app import Orchestrator, OrchestratorSettings
from polyfleet.logs import configure_logging


async def _main() -> None:
    orchestrator = Orchestrator(OrchestratorSettings())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, orchestrator.shutdown)
    await orchestrator.run()


def main() -> None:
    """Entry point."""
    configure_logging()
    asyncio.run(_main())


if __name__ == "__main__":
    main()
