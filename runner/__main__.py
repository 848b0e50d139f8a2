"""`python -m runner`: run one runner process until SIGTERM/Ctrl-C."""

from __future__ import annotations

import asyncio
import signal

from polyfleet.logs import configure_logging
from runner.app import Runner, RunnerAppSettings


async def _main() -> None:
    runner = Runner(RunnerAppSettings())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.shutdown)
    await runner.run()


def main() -> None:
    """Entry point."""
    configure_logging()
    asyncio.run(_main())


if __name__ == "__main__":
    main()
