"""polyfleet.process: what every process does around its run."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys

from polyfleet.process import YOUNG_COLLECTION_THRESHOLD, freeze_when_ready


class SlowToStart:
    """A process that becomes ready when told to."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def wait_ready(self) -> None:
        await self.ready.wait()

    def shutdown(self) -> None:
        pass


async def test_objects_alive_when_the_process_is_ready_are_frozen_then_and_not_before() -> None:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    process = SlowToStart()
    freezing = asyncio.create_task(freeze_when_ready(process))
    try:
        await asyncio.sleep(0)
        assert not freezing.done()
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == thresholds

        process.ready.set()
        await asyncio.wait_for(freezing, 5)
        assert gc.get_freeze_count() > 0
        # Once serving, the young generation is collected less often; the older ones as before.
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *thresholds[1:])
    finally:
        freezing.cancel()
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_leaving_runs_the_exit_handlers_flushes_and_exits_with_the_status() -> None:
    script = (
        "import atexit, logging, sys\n"
        "from polyfleet.process import leave\n"
        "atexit.register(lambda: print('handler ran', flush=False))\n"
        "print('buffered', end=' ')\n"
        "leave(3)\n"
        "print('never')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 3
    assert done.stdout == "buffered handler ran\n"
