"""Fixtures of the DSL engine tests: one real HTTP server, reset for every test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from tests.unit.dsl.support import Server


@pytest.fixture(scope="session")
def _http_server() -> Iterator[Server]:
    server = Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(_http_server: Server) -> Server:
    """The test HTTP server, with its counters cleared."""
    _http_server.reset()
    return _http_server


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A client like the runner's: one per test, closed afterwards."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client
