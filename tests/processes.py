"""Runner processes for tests: `python -m runner` on a fleet's queues, always stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from polyfleet.roles import Role
from tests.conftest import Fleet

REPO = Path(__file__).resolve().parents[1]


def _spawn(env: dict[str, str], log: Path, module: Sequence[str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:
        return subprocess.Popen([sys.executable, "-m", *module], cwd=REPO, env=env, stderr=stderr)


def _wait_ready(process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    # Generous: a runner's imports (LangChain, LangGraph, jq) took 15 s on a loaded 2-core
    # machine; the bound only decides how long a broken start takes to be reported.
    deadline = time.monotonic() + timeout
    while "runner polling" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"runner did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes], grace: float = 15) -> None:
    """SIGTERM ``process``, then SIGKILL it if it has not exited within ``grace`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@asynccontextmanager
async def runner_process(
    fleet: Fleet, log: Path, module: Sequence[str] = ("runner",), **overrides: str
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """Start ``python -m runner`` on the fleet's queues; ``overrides`` add environment.

    ``module`` is what ``python -m`` runs, with its arguments: e.g. a runner with a fault
    hook (``("tests.faults", "kill-after-checkpoint", "1")``).
    """
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": fleet.temporal.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": fleet.temporal.namespace,
        **fleet.client_env(Role.RUNNER),
        "TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE": (
            fleet.queues.agent_execution_runner_task_queue
        ),
        "TEMPORAL_WORKFLOW_EXECUTION_RUNNER_TASK_QUEUE": (
            fleet.queues.workflow_execution_runner_task_queue
        ),
        "POLYFLEET_RUNNER_HEARTBEAT_INTERVAL": "0.5",
        "POLYFLEET_LOG_LEVEL": "INFO",
        **overrides,
    }
    process = await asyncio.to_thread(_spawn, env, log, module)
    try:
        await asyncio.to_thread(_wait_ready, process, log)
        yield process
    finally:
        await asyncio.to_thread(stop_process, process)
