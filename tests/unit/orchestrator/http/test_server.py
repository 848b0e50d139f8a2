"""The HTTP server's binding rules: loopback or TLS and auth, clear errors, port 0."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from orchestrator import Orchestrator, OrchestratorSettings
from orchestrator.http.server import HttpAddressInUseError, HttpServer, bind
from polyfleet.config import ApiSettings, ConfigError, HttpSettings, StoreSettings


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def test_serves_on_a_free_port_when_given_port_zero_and_stops_twice() -> None:
    server = HttpServer(Starlette(routes=[Route("/", _hello)]), "127.0.0.1:0")
    await server.start()
    try:
        port = int(server.address.rpartition(":")[2])
        assert port > 0
        assert server.url == f"http://127.0.0.1:{port}/"
        async with httpx.AsyncClient() as client:
            assert (await client.get(server.url)).text == "hello"
    finally:
        await server.shutdown()
    await server.shutdown()
    with socket.socket() as probe:
        # Released: the port can be bound again.
        probe.bind(("127.0.0.1", port))


def test_a_port_in_use_names_the_variable() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(HttpAddressInUseError) as raised:
            bind(address)
    assert f"cannot listen on POLYFLEET_HTTP_ADDRESS={address}" in str(raised.value)


def test_an_address_without_a_port_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="POLYFLEET_HTTP_ADDRESS=localhost: expected host:port"):
        bind("localhost")


async def test_plain_http_on_all_interfaces_is_refused_naming_the_http_address(
    tmp_path: Path,
) -> None:
    orchestrator = Orchestrator(
        OrchestratorSettings(
            api=ApiSettings(api_address="127.0.0.1:0"),
            store=StoreSettings(data_dir=tmp_path / "data"),
            http=HttpSettings(address="0.0.0.0:7280"),
        )
    )
    with pytest.raises(
        ConfigError, match=r"POLYFLEET_HTTP_ADDRESS=0\.0\.0\.0:7280 is not a loopback"
    ):
        await orchestrator.run()
    assert not (tmp_path / "data").exists()
