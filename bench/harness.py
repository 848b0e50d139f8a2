"""What the benchmarks share: a no-op agent, an OTLP receiver, process stops, samplers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from abc import ABC, abstractmethod
from contextlib import suppress
from pathlib import Path
from typing import Any

from polyfleet.fleet import FleetConfig, free_port
from polyfleet.v1 import agent_pb2

STOP_TIMEOUT = 30.0


def local_fleet(data_dir: Path, env: dict[str, str], runners: int, **options: Any) -> FleetConfig:
    """A fleet on free 127.0.0.1 ports with Temporal in memory (nothing to keep, no sync)."""
    return FleetConfig(
        data_dir=data_dir,
        runners=runners,
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        api_address=f"127.0.0.1:{free_port()}",
        base_env=env,
        temporal_in_memory=True,
        **options,
    )


def noop_agent(name: str) -> agent_pb2.Agent:
    """An agent whose answer costs nothing: the offline ``scripted`` model, no delay."""
    return agent_pb2.Agent(
        name=name,
        instructions="You are a benchmark agent.",
        model=agent_pb2.ModelConfig(
            provider="scripted",
            scripted=agent_pb2.ScriptedModel(default_reply="done"),
        ),
    )


def fake_openai_agent(name: str, base_url: str, retry: agent_pb2.ModelRetry) -> agent_pb2.Agent:
    """An agent on the real ``openai`` provider, calling the fake model server at ``base_url``."""
    return agent_pb2.Agent(
        name=name,
        model=agent_pb2.ModelConfig(
            provider="openai", model="fake-model", base_url=base_url, retry=retry
        ),
    )


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM ``process``, SIGKILL it after ``timeout``, then whatever it started."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    # Anything it started lives in its process group (start_new_session): leave nothing.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


class Sampler(ABC):
    """Calls :meth:`sample` every ``interval`` seconds in the background, between start and stop."""

    interval = 1.0

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    def sample(self) -> None:
        """Take one sample."""

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Start sampling."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
