"""The orchestrator's health follows its dependency checks (orchestrator/health.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest_asyncio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from orchestrator.health import HealthMonitor
from tests.helpers import free_port

SERVICE = "polyfleet.v1.RunnerService"


@dataclass
class Served:
    servicer: health.aio.HealthServicer
    stub: health_pb2_grpc.HealthStub


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Served]:
    servicer = health.aio.HealthServicer()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    address = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(address)
    await server.start()
    channel = grpc.aio.insecure_channel(address)
    try:
        for name in (SERVICE, ""):
            await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        yield Served(servicer, health_pb2_grpc.HealthStub(channel))
    finally:
        await channel.close()
        await server.stop(None)


class FakeCheck:
    """A dependency that fails while ``broken`` is set."""

    def __init__(self) -> None:
        self.broken: Exception | None = None

    async def __call__(self) -> object:
        if self.broken is not None:
            raise self.broken
        return None


async def _statuses(stub: health_pb2_grpc.HealthStub) -> list[int]:
    return [
        (await stub.Check(health_pb2.HealthCheckRequest(service=name))).status
        for name in (SERVICE, "")
    ]


async def test_not_serving_while_temporal_is_unusable_and_serving_again_after(
    served: Served,
) -> None:
    temporal, db = FakeCheck(), FakeCheck()
    monitor = HealthMonitor(served.servicer, (SERVICE, ""), {"temporal": temporal, "store": db})
    assert await monitor.check_once()
    assert await _statuses(served.stub) == [health_pb2.HealthCheckResponse.SERVING] * 2

    temporal.broken = RuntimeError("connection refused")
    assert not await monitor.check_once()
    assert await _statuses(served.stub) == [health_pb2.HealthCheckResponse.NOT_SERVING] * 2

    temporal.broken = None
    assert await monitor.check_once()
    assert await _statuses(served.stub) == [health_pb2.HealthCheckResponse.SERVING] * 2


async def test_not_serving_while_the_store_is_unusable(served: Served) -> None:
    db = FakeCheck()
    db.broken = OSError("Input/output error")
    monitor = HealthMonitor(served.servicer, (SERVICE, ""), {"store": db})
    assert not await monitor.check_once()
    assert await _statuses(served.stub) == [health_pb2.HealthCheckResponse.NOT_SERVING] * 2


async def test_a_check_that_hangs_counts_as_failed(served: Served) -> None:
    async def hangs() -> object:
        await asyncio.Event().wait()
        return None

    monitor = HealthMonitor(served.servicer, (SERVICE,), {"temporal": hangs}, timeout=0.05)
    assert not await monitor.check_once()
