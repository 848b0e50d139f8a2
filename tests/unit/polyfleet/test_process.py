"""polyfleet.process: what every process does around its run."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys

import pytest
import uvloop

from polyfleet.config import ConfigError, ProcessSettings
from polyfleet.process import YOUNG_COLLECTION_THRESHOLD, event_loop_factory, freeze_when_ready


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


def test_serving_processes_run_on_the_standard_loop_unless_uvloop_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POLYFLEET_EVENT_LOOP", raising=False)
    assert event_loop_factory() is None
    assert event_loop_factory(ProcessSettings(event_loop="uvloop")) is uvloop.new_event_loop
    monkeypatch.setenv("POLYFLEET_EVENT_LOOP", " UVLoop ")
    assert event_loop_factory() is uvloop.new_event_loop


def test_an_unknown_event_loop_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POLYFLEET_EVENT_LOOP", "trio")
    with pytest.raises(ConfigError, match="POLYFLEET_EVENT_LOOP='trio'"):
        event_loop_factory()


# A process that reports the class of the loop it runs on, then shuts itself down.
_LOOP_REPORTER = """
import asyncio
from polyfleet.process import serve

class Reporter:
    def __init__(self):
        self._stop = asyncio.Event()
    async def run(self):
        loop = asyncio.get_running_loop()
        print(type(loop).__module__, flush=True)
        loop.call_soon(self.shutdown)
        await self._stop.wait()
    async def wait_ready(self):
        await self._stop.wait()
    def shutdown(self):
        self._stop.set()

serve(Reporter)
"""


@pytest.mark.parametrize(("setting", "module"), [("", "asyncio"), ("uvloop", "uvloop")])
def test_serve_runs_the_process_on_the_chosen_loop(setting: str, module: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYFLEET_")}
    if setting:
        env["POLYFLEET_EVENT_LOOP"] = setting
    done = subprocess.run(
        [sys.executable, "-c", _LOOP_REPORTER],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split(".")[0].strip() == module
