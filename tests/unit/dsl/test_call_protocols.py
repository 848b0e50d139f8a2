"""`call: openapi`, `call: grpc` and `call: mcp` against real servers on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from polyfleet.dsl import COMMUNICATION, RUNTIME, VALIDATION, WorkflowError, validate_document
from tests.grpc_server import SERVICE, GrpcServer
from tests.integration.graphton.mcp_http import HttpMcpServer
from tests.unit.dsl.support import Hooks, Server, doc, run


def pointers(body: str) -> dict[str, str]:
    return {p.pointer: p.message for p in validate_document(doc(body))}


# -- openapi ----------------------------------------------------------------------------


def openapi_spec(server_url: str) -> dict[str, Any]:
    """Operations on the echo server, with parameters in every place and a request body."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "echo", "version": "1"},
        "servers": [{"url": "{base}", "variables": {"base": {"default": server_url}}}],
        "paths": {
            "/echo": {
                "parameters": [{"name": "X-Trace", "in": "header"}],
                "get": {
                    "operationId": "getEcho",
                    "parameters": [
                        {"$ref": "#/components/parameters/q"},
                        {"name": "session", "in": "cookie"},
                    ],
                },
                "post": {
                    "operationId": "postEcho",
                    "requestBody": {"content": {"application/json": {}}},
                },
            },
            "/count/{name}": {
                "get": {
                    "operationId": "count",
                    "parameters": [{"name": "name", "in": "path", "required": True}],
                }
            },
            "/status/404": {"get": {"operationId": "missing"}},
        },
        "components": {"parameters": {"q": {"name": "q", "in": "query", "required": True}}},
    }


@pytest.fixture
def spec_file(server: Server, tmp_path: Path) -> Path:
    path = tmp_path / "echo.json"
    path.write_text(json.dumps(openapi_spec(server.url)))
    return path


def openapi_task(endpoint: str, operation: str, extra: str = "") -> str:
    return (
        "do:\n  - op:\n      call: openapi\n      with:\n"
        f"        document: {{endpoint: '{endpoint}'}}\n"
        f"        operationId: {operation}\n" + extra
    )


async def test_openapi_places_parameters_by_their_in(
    spec_file: Path, http: httpx.AsyncClient
) -> None:
    document = doc(
        openapi_task(
            str(spec_file),
            "getEcho",
            "        parameters: {q: '${ .q }', X-Trace: t-1, session: abc}\n",
        )
    )
    result = await run(document, {"q": "hello world"}, http=http)
    assert result["method"] == "GET"
    assert result["path"] == "/echo"
    assert result["query"] == {"q": "hello world"}
    assert result["headers"]["x-trace"] == "t-1"
    assert result["headers"]["cookie"] == "session=abc"


async def test_openapi_body_is_the_undeclared_parameters_and_yaml_by_file_url(
    server: Server, tmp_path: Path, http: httpx.AsyncClient
) -> None:
    import yaml

    path = tmp_path / "echo.yaml"
    path.write_text(yaml.safe_dump(openapi_spec(server.url)))
    document = doc(
        openapi_task(
            path.as_uri(),
            "postEcho",
            "        parameters: {name: rex, tags: [a]}\n        output: response\n",
        )
    )
    result = await run(document, http=http)
    assert result["statusCode"] == 200
    assert result["request"]["method"] == "post"
    assert result["content"]["body"] == {"name": "rex", "tags": ["a"]}


async def test_openapi_document_served_over_http_with_a_relative_server(
    server: Server, http: httpx.AsyncClient
) -> None:
    """A document fetched by URL; `servers: [{url: /}]` resolves against the document's URL."""
    spec = openapi_spec(server.url)
    spec["servers"] = [{"url": "/"}]
    # The document is served beside the real server's routes; the operations reach it.
    transport_calls: list[str] = []
    real = httpx.AsyncHTTPTransport()

    async def serve(request: httpx.Request) -> httpx.Response:
        transport_calls.append(str(request.url))
        if request.url.path == "/api/openapi.json":
            return httpx.Response(200, json=spec)
        response = await real.handle_async_request(request)
        await response.aread()
        return httpx.Response(response.status_code, headers=response.headers,
                              content=response.content)  # fmt: skip

    async with real, httpx.AsyncClient(transport=httpx.MockTransport(serve)) as client:
        document = doc(
            openapi_task(
                f"{server.url}/api/openapi.json", "count", "        parameters: {name: n1}\n"
            )
            + "  - again:\n      call: openapi\n      with:\n"
            f"        document: {{endpoint: '{server.url}/api/openapi.json'}}\n"
            "        operationId: count\n        parameters: {name: n1}\n"
        )
        result = await run(document, http=client)
    assert result == {"name": "n1", "count": 2}
    # The document was fetched once for the run.
    assert transport_calls.count(f"{server.url}/api/openapi.json") == 1


async def test_openapi_errors_name_the_operation_and_the_document(
    spec_file: Path, server: Server, http: httpx.AsyncClient
) -> None:
    with pytest.raises(WorkflowError) as unknown:
        await run(doc(openapi_task(str(spec_file), "nope")), http=http)
    assert unknown.value.type == RUNTIME
    assert "operationId 'nope'" in unknown.value.detail
    assert unknown.value.instance == "/do/0/op"

    with pytest.raises(WorkflowError) as missing:
        await run(doc(openapi_task(str(spec_file), "count")), http=http)
    assert missing.value.type == VALIDATION
    assert "path parameter 'name'" in missing.value.detail

    with pytest.raises(WorkflowError) as status:
        await run(doc(openapi_task(str(spec_file), "missing")), http=http)
    assert (status.value.type, status.value.status) == (COMMUNICATION, 404)

    with pytest.raises(WorkflowError) as unreachable:
        await run(doc(openapi_task(f"{server.url}/status/503", "x")), http=http)
    assert (unreachable.value.type, unreachable.value.status) == (COMMUNICATION, 503)
    assert "Cannot read the OpenAPI document" in unreachable.value.title

    with pytest.raises(WorkflowError) as absent:
        await run(doc(openapi_task(str(spec_file) + ".absent", "x")), http=http)
    assert absent.value.type == COMMUNICATION

    with pytest.raises(WorkflowError) as relative:
        await run(doc(openapi_task("file://app/echo.json", "x")), http=http)
    assert (relative.value.type, relative.value.status) == (COMMUNICATION, 400)
    assert "absolute path" in relative.value.detail


async def test_openapi_authentication_goes_through_call_http(
    spec_file: Path, server: Server, http: httpx.AsyncClient
) -> None:
    hooks = Hooks()
    document = doc(
        "use: {secrets: [apiToken]}\n"
        + openapi_task(
            str(spec_file),
            "getEcho",
            "        parameters: {q: x}\n"
            "        authentication: {bearer: {token: '${ $secrets.apiToken }'}}\n"
            "        output: response\n",
        )
    )
    result = await run(document, hooks=hooks, http=http, secrets={"apiToken": "tok-12345"})
    assert server.echoed[-1]["authorization"] == "Bearer tok-12345"
    assert "authorization" not in result["request"]["headers"]
    assert "tok-12345" not in hooks.dump()


def test_openapi_with_is_checked() -> None:
    problems = pointers(
        "do:\n  - op:\n      call: openapi\n      with:\n"
        "        document: {endpoint: {uri: x, authentication: {basic: {}}}}\n"
        "        operationId: ''\n        parameters: [1]\n        output: body\n"
        "        authentication: {certificate: {}}\n        extra: 1\n"
    )
    assert set(problems) == {
        "/do/0/op/with/document/endpoint/authentication",
        "/do/0/op/with/operationId",
        "/do/0/op/with/parameters",
        "/do/0/op/with/output",
        "/do/0/op/with/authentication/certificate",
        "/do/0/op/with/extra",
    }
    assert (
        "'document'"
        in pointers("do:\n  - op: {call: openapi, with: {operationId: x}}\n")[
            "/do/0/op/with/document"
        ]
    )


# -- grpc -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grpc_server() -> Iterator[GrpcServer]:
    with GrpcServer() as server:
        yield server


def grpc_task(port: int, method: str, proto: str = "", arguments: str = "{}") -> str:
    return (
        "do:\n  - g:\n      call: grpc\n      with:\n"
        + (f"        proto: {{endpoint: '{proto}'}}\n" if proto else "")
        + f"        service: {{name: {SERVICE}, host: 127.0.0.1, port: {port}}}\n"
        f"        method: {method}\n        arguments: {arguments}\n"
    )


@pytest.mark.parametrize("with_proto", [False, True], ids=["reflection", "proto-file"])
async def test_grpc_unary_call_json_in_proto3_json_out(
    grpc_server: GrpcServer, with_proto: bool
) -> None:
    proto = grpc_server.proto_path.as_uri() if with_proto else ""
    arguments = "{name: '${ .who }', times: 2, at: '2024-01-01T00:00:00Z'}"
    document = doc(grpc_task(grpc_server.port, "SayHello", proto, arguments))
    result = await run(document, {"who": "Ada"})
    assert result == {"message": "Hello, Ada", "echoes": ["Ada", "Ada", "1704067200"]}


async def test_grpc_errors_carry_the_status(grpc_server: GrpcServer) -> None:
    with pytest.raises(WorkflowError) as failed:
        await run(doc(grpc_task(grpc_server.port, "Fail", arguments="{name: x}")))
    assert (failed.value.type, failed.value.status) == (COMMUNICATION, 404)
    assert "NOT_FOUND" in failed.value.detail and "no greeting for x" in failed.value.detail

    with pytest.raises(WorkflowError) as unknown:
        await run(doc(grpc_task(grpc_server.port, "Nope")))
    assert unknown.value.type == RUNTIME and "greet.v1.Greeter/Nope" in unknown.value.detail

    with pytest.raises(WorkflowError) as bad:
        await run(doc(grpc_task(grpc_server.port, "SayHello", arguments="{nom: x}")))
    assert bad.value.type == VALIDATION and "nom" in bad.value.detail


async def test_grpc_without_reflection_needs_the_proto(tmp_path: Path) -> None:
    with GrpcServer(reflection_enabled=False) as server:
        with pytest.raises(WorkflowError) as failed:
            await run(doc(grpc_task(server.port, "SayHello")))
        assert failed.value.type == COMMUNICATION
        assert "give 'proto' instead" in failed.value.detail
        bad = tmp_path / "bad.proto"
        bad.write_text("syntax = 'proto3'; message {")
        with pytest.raises(WorkflowError) as invalid:
            await run(doc(grpc_task(server.port, "SayHello", str(bad))))
        assert invalid.value.type == RUNTIME and "does not compile" in invalid.value.detail


def test_grpc_with_is_checked() -> None:
    problems = pointers(
        "do:\n  - g:\n      call: grpc\n      with:\n"
        "        service: {name: s, port: 70000, authentication: {basic: {}}}\n"
        "        arguments: [1]\n"
    )
    assert set(problems) == {
        "/do/0/g/with/method",
        "/do/0/g/with/service/host",
        "/do/0/g/with/service/port",
        "/do/0/g/with/service/authentication",
        "/do/0/g/with/arguments",
    }


# -- mcp --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[HttpMcpServer]:
    with HttpMcpServer() as server:
        yield server


def mcp_task(url: str, method: str, parameters: str = "{}", headers: str = "{}") -> str:
    return (
        "do:\n  - m:\n      call: mcp\n      with:\n"
        f"        method: {method}\n        parameters: {parameters}\n"
        f"        transport: {{http: {{endpoint: '{url}', headers: {headers}}}}}\n"
    )


async def test_mcp_tools_call_and_list(mcp_server: HttpMcpServer) -> None:
    hooks = Hooks()
    document = doc(
        "use: {secrets: [mcpToken]}\n"
        + mcp_task(
            mcp_server.url,
            "tools/call",
            "{name: greet, arguments: {name: '${ .who }'}}",
            """{Authorization: '${ "Bearer " + $secrets.mcpToken }'}""",
        )
    )
    result = await run(document, {"who": "Ada"}, hooks=hooks, secrets={"mcpToken": "mcp-5678"})
    assert result["content"] == [{"type": "text", "text": "Hello, Ada, from HTTP"}]
    assert result["isError"] is False
    assert mcp_server.authorizations[-1] == "Bearer mcp-5678"
    assert "mcp-5678" not in hooks.dump()

    listed = await run(doc(mcp_task(mcp_server.url, "tools/list")))
    assert [tool["name"] for tool in listed["tools"]] == ["greet"]
    assert "inputSchema" in listed["tools"][0]


async def test_mcp_failures_are_runtime_errors(mcp_server: HttpMcpServer) -> None:
    with pytest.raises(WorkflowError) as tool:
        await run(doc(mcp_task(mcp_server.url, "tools/call", "{name: nope}")))
    assert tool.value.type == RUNTIME and "tool 'nope'" in tool.value.detail

    with pytest.raises(WorkflowError) as down:
        await run(doc(mcp_task("http://127.0.0.1:1/mcp", "tools/list")))
    assert down.value.type == RUNTIME and "ConnectError" in down.value.detail


def test_mcp_with_is_checked() -> None:
    problems = pointers(
        "do:\n  - m:\n      call: mcp\n      with:\n"
        "        method: tools/run\n        protocolVersion: '1999-01-01'\n"
        "        transport: {stdio: {command: npx}}\n"
    )
    assert set(problems) == {
        "/do/0/m/with/method",
        "/do/0/m/with/protocolVersion",
        "/do/0/m/with/transport/stdio",
    }
    assert "may not start processes" in problems["/do/0/m/with/transport/stdio"]


def test_mcp_protocol_versions_are_the_sdks() -> None:
    from mcp.shared.version import SUPPORTED_PROTOCOL_VERSIONS

    from polyfleet.dsl.tasks import mcp_call

    assert tuple(SUPPORTED_PROTOCOL_VERSIONS) == mcp_call.SUPPORTED_PROTOCOL_VERSIONS
