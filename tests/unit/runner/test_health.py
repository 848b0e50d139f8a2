"""The runner's HTTP health endpoints (runner/health.py) and their settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio

from polyfleet.config import ConfigError, RunnerSettings
from runner.health import HealthServer
from tests.helpers import http_get, http_request


class Readiness:
    def __init__(self) -> None:
        self.why_not: str | None = None

    async def __call__(self) -> str | None:
        return self.why_not


@pytest_asyncio.fixture
async def readiness() -> AsyncIterator[tuple[Readiness, int]]:
    ready = Readiness()
    server = HealthServer("127.0.0.1", 0, ready)
    await server.start()
    try:
        yield ready, server.port
    finally:
        await server.close()


async def test_livez_and_readyz(readiness: tuple[Readiness, int]) -> None:
    ready, port = readiness
    assert await http_get(port, "/livez") == (200, "ok\n")
    assert await http_get(port, "/readyz") == (200, "ready\n")
    ready.why_not = "draining: 3 activities in flight"
    assert await http_get(port, "/readyz?verbose") == (503, "draining: 3 activities in flight\n")
    assert await http_get(port, "/livez") == (200, "ok\n")


async def test_other_requests(readiness: tuple[Readiness, int]) -> None:
    _, port = readiness
    assert (await http_get(port, "/metrics"))[0] == 404
    assert (await http_get(port, "/readyz", "POST"))[0] == 405
    assert await http_get(port, "/livez", "HEAD") == (200, "")
    assert (await http_request(port, b"nonsense\r\n\r\n"))[0] == 400
    # A request that never ends its head is answered 400 (truncated) or cut off, never hangs.
    assert (await http_request(port, b"GET /livez HTTP/1.1\r\n" + b"X: y\r\n" * 2000))[0] == 400


async def test_a_port_in_use_names_the_setting(readiness: tuple[Readiness, int]) -> None:
    ready, port = readiness
    with pytest.raises(ConfigError, match="POLYFLEET_RUNNER_HEALTH_PORT"):
        await HealthServer("127.0.0.1", port, ready).start()


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = RunnerSettings()
    assert defaults.shutdown_grace == timedelta(minutes=10)
    assert defaults.health_port == 0
    monkeypatch.setenv("POLYFLEET_RUNNER_HEALTH_PORT", "")
    monkeypatch.setenv("POLYFLEET_RUNNER_SHUTDOWN_GRACE", "90s")
    settings = RunnerSettings()
    assert (settings.health_port, settings.shutdown_grace) == (0, timedelta(seconds=90))
    monkeypatch.setenv("POLYFLEET_RUNNER_HEALTH_PORT", "70000")
    with pytest.raises(ConfigError, match="POLYFLEET_RUNNER_HEALTH_PORT"):
        RunnerSettings()
