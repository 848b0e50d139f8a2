"""TLS and mTLS on the gRPC API: a real orchestrator and runner over TLS on loopback."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from temporalio.client import Client

from polyfleet.channel import create_channel
from polyfleet.client import Client as PolyfleetClient
from polyfleet.config import ApiSettings, AuthSettings
from polyfleet.roles import Role
from polyfleet.v1 import agent_pb2, agent_pb2_grpc, common_pb2
from tests.conftest import Fleet, scripted_agent, start_fleet, stop_fleet
from tests.helpers import wait_terminal
from tests.tls import TlsFiles

if TYPE_CHECKING:
    from polyfleet.v1.agent_pb2_grpc import AgentServiceAsyncStub

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return TlsFiles.create(tmp_path_factory.mktemp("tls"))


@pytest_asyncio.fixture(scope="module")
async def mtls_fleet(
    temporal_env: Any, tls: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Fleet]:
    """A fleet whose API requires client certificates; its runner and channel present one."""
    fleet = await start_fleet(
        temporal_env.client,
        tmp_path_factory.mktemp("data"),
        api={**tls.server_settings(mtls=True), **tls.client_settings(tls.client)},
    )
    try:
        yield fleet
    finally:
        await stop_fleet(fleet)


async def _check(address: str, **fields: Any) -> health_pb2.HealthCheckResponse:
    settings = ApiSettings(api_address=address, **fields)
    channel = create_channel(address, settings)
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        return await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    finally:
        await channel.close()


async def test_agent_execution_completes_over_mtls(mtls_fleet: Fleet) -> None:
    # The runner reaches RunnerService over mTLS too: without it nothing completes.
    client = mtls_fleet.client
    await client.agents.apply(scripted_agent("tls-agent"))
    created = await client.agent_executions.create(agent="tls-agent", message="hello")
    done = await wait_terminal(client.agent_executions, created.id)
    assert (done.status.phase, done.status.output_text) == (COMPLETED, "You said: hello")


async def test_client_with_a_certificate_from_the_ca_is_served(
    mtls_fleet: Fleet, tls: TlsFiles
) -> None:
    response = await _check(mtls_fleet.orchestrator.address, **tls.client_settings(tls.client))
    assert response.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("who", ["no certificate", "another CA", "plaintext"])
async def test_refused_clients(mtls_fleet: Fleet, tls: TlsFiles, who: str) -> None:
    fields: dict[str, Any] = {
        "no certificate": tls.client_settings(),
        "another CA": tls.client_settings(tls.stranger),
        "plaintext": {},
    }[who]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _check(mtls_fleet.orchestrator.address, **fields)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_plaintext_client_fails_against_tls_server(
    temporal_client: Client, tls: TlsFiles, tmp_path: Path
) -> None:
    fleet = await start_fleet(
        temporal_client,
        tmp_path,
        with_runner=False,
        api={**tls.server_settings(mtls=False), **tls.client_settings()},
    )
    try:
        address = fleet.orchestrator.address
        served = await _check(address, **tls.client_settings())
        assert served.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _check(address)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        # The Python client (and so the CLI) speaks TLS from the same settings.
        settings = ApiSettings(api_address=address, **tls.client_settings())
        async with await PolyfleetClient.connect(settings=settings) as client:
            assert list((await client.agents.list()).agents) == []
    finally:
        await stop_fleet(fleet)


async def test_rotated_certificate_is_served_without_restart(
    temporal_client: Client, tmp_path: Path
) -> None:
    tls = TlsFiles.create(tmp_path / "tls")
    served = tmp_path / "served"
    served.mkdir()
    cert, key = served / "server.crt", served / "server.key"
    cert.write_bytes(tls.server.cert.read_bytes())
    key.write_bytes(tls.server.key.read_bytes())
    fleet = await start_fleet(
        temporal_client,
        tmp_path / "data",
        with_runner=False,
        api={"api_tls_cert": cert, "api_tls_key": key, **tls.client_settings()},
    )
    try:
        address = fleet.orchestrator.address
        await _check(address, **tls.client_settings())
        # Rotate to a server certificate of another CA, as an operator replaces files.
        rotated = tls.other_ca.issue(tmp_path / "tls", "rotated", server=True)
        key.write_bytes(rotated.key.read_bytes())
        cert.write_bytes(rotated.cert.read_bytes())
        stamp = os.stat(cert).st_mtime + 1
        os.utime(cert, (stamp, stamp))
        new_root = {"api_tls": True, "api_tls_root_cert": tls.other_ca.cert}
        response = await _check(address, **new_root)
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _check(address, **tls.client_settings())
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await stop_fleet(fleet)


async def test_a_client_certificate_name_maps_to_its_role(
    temporal_client: Client, tls: TlsFiles, tmp_path: Path
) -> None:
    # The certificate "client" is an operator's; a token still wins over the certificate.
    fleet = await start_fleet(
        temporal_client,
        tmp_path,
        with_runner=False,
        api={**tls.server_settings(mtls=True), **tls.client_settings(tls.client)},
        auth=AuthSettings(mtls_roles={"client": Role.OPERATOR}),
    )
    try:
        agents: AgentServiceAsyncStub = agent_pb2_grpc.AgentServiceStub(fleet.channel)
        listed = await agents.ListAgents(agent_pb2.ListAgentsRequest())
        assert list(listed.agents) == []
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await agents.DeleteAgent(agent_pb2.DeleteAgentRequest(name="assistant"))
        assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert raised.value.details() == ("DeleteAgent needs role admin; client has role operator")
    finally:
        await stop_fleet(fleet)
