"""`call: openapi|grpc|mcp` and `use.functions` end to end, against servers on 127.0.0.1.

The runner fetches an OpenAPI document from a real HTTP server and sends the operation to the
echo server, calls a gRPC greeter through reflection and through its proto file, and calls a
tool of a streamable-HTTP MCP server; `call: asyncapi` and unknown functions are refused when
the workflow is applied (catalog functions: test_catalog_functions.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from polyfleet.v1 import common_pb2
from tests.conftest import Fleet
from tests.grpc_server import SERVICE, GrpcServer
from tests.http_server import Server
from tests.integration.graphton.mcp_http import HttpMcpServer
from tests.integration.workflows.conftest import apply_workflow, finish, output, start, tasks
from tests.integration.workflows.test_workflow_executions import (
    test_invalid_documents_are_rejected_naming_the_pointer as rejected_naming_the_pointer,
)

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED
FAILED = common_pb2.EXECUTION_PHASE_FAILED


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A static HTTP server on 127.0.0.1 serving a directory: (its URL, the directory)."""
    root = tmp_path_factory.mktemp("served")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def greeter() -> Iterator[GrpcServer]:
    with GrpcServer() as server:
        yield server


@pytest.fixture(scope="module")
def mcp() -> Iterator[HttpMcpServer]:
    with HttpMcpServer() as server:
        yield server


async def test_openapi_grpc_mcp_and_functions_in_one_workflow(
    fleet: Fleet,
    http: Server,
    documents: tuple[str, Path],
    greeter: GrpcServer,
    mcp: HttpMcpServer,
) -> None:
    base, root = documents
    (root / "echo.json").write_text(
        json.dumps(
            {
                "openapi": "3.0.3",
                "info": {"title": "echo", "version": "1"},
                "servers": [{"url": http.url}],
                "paths": {
                    "/echo": {
                        "post": {
                            "operationId": "postEcho",
                            "parameters": [{"name": "lang", "in": "query"}],
                            "requestBody": {"content": {"application/json": {}}},
                        }
                    }
                },
            }
        )
    )
    await apply_workflow(
        fleet,
        "protocols",
        f"""
        use:
          functions:
            echo:
              call: openapi
              with:
                document: {{endpoint: '{base}/echo.json'}}
                operationId: postEcho
                parameters: {{lang: en, name: '${{ .name }}'}}
        do:
          - viaOpenapi:
              call: echo
              with: {{name: '${{ .who }}'}}
              output: {{as: '${{ {{openapi: .body.name, lang: .query.lang}} }}'}}
          - viaReflection:
              call: grpc
              with:
                service: {{name: {SERVICE}, host: 127.0.0.1, port: {greeter.port}}}
                method: SayHello
                arguments: {{name: '${{ $workflow.input.who }}', times: 1}}
              output: {{as: '${{ $input + {{reflection: .message}} }}'}}
          - viaProto:
              call: grpc
              with:
                proto: {{endpoint: '{greeter.proto_path.as_uri()}'}}
                service: {{name: {SERVICE}, host: 127.0.0.1, port: {greeter.port}}}
                method: SayHello
                arguments: {{name: proto}}
              output: {{as: '${{ $input + {{proto: .message}} }}'}}
          - viaMcp:
              call: mcp
              with:
                method: tools/call
                parameters: {{name: greet, arguments: {{name: '${{ $workflow.input.who }}'}}}}
                transport: {{http: {{endpoint: '{mcp.url}'}}}}
              output: {{as: '${{ $input + {{mcp: .content[0].text}} }}'}}
        """,
    )
    done = await finish(fleet, (await start(fleet, "protocols", {"who": "ada"})).id)
    assert done.status.phase == COMPLETED, done.status.error
    assert output(done) == {
        "openapi": "ada",
        "lang": "en",
        "reflection": "Hello, ada",
        "proto": "Hello, proto",
        "mcp": "Hello, ada, from HTTP",
    }
    by_id = tasks(done)
    assert by_id["/do/0/viaOpenapi"].type == "call:echo"
    assert by_id["/do/0/viaOpenapi/function/echo"].type == "call:openapi"
    assert by_id["/do/3/viaMcp"].type == "call:mcp"
    assert http.calls["echo"] == 1
    assert greeter.requests[-2:] == ["ada", "proto"]


async def test_an_unknown_operation_fails_the_task_naming_it(
    fleet: Fleet, documents: tuple[str, Path]
) -> None:
    base, root = documents
    (root / "empty.yaml").write_text("openapi: 3.0.3\ninfo: {title: e, version: '1'}\npaths: {}\n")
    await apply_workflow(
        fleet,
        "no-operation",
        f"""
        do:
          - op:
              call: openapi
              with:
                document: {{endpoint: '{base}/empty.yaml'}}
                operationId: findPets
        """,
    )
    failed = await finish(fleet, (await start(fleet, "no-operation")).id)
    assert failed.status.phase == FAILED
    assert failed.status.error.instance == "/do/0/op"
    assert "operationId 'findPets'" in failed.status.error.detail
    task_error = tasks(failed)["/do/0/op"].error
    assert task_error.type == "https://serverlessworkflow.io/spec/1.0.0/errors/runtime"


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ("do:\n  - a: {call: asyncapi, with: {document: {endpoint: x}}}\n", "/do/0/a/call"),
        ("do:\n  - a: {call: 'log:1.0.0@nowhere', with: {}}\n", "/do/0/a/call"),
        ("do:\n  - a: {call: undefinedFunction}\n", "/do/0/a/call"),
        (
            "do:\n  - a: {call: mcp, with: {method: tools/list, "
            "transport: {stdio: {command: sh}}}}\n",
            "/do/0/a/with/transport/stdio",
        ),
    ],
)
async def test_unsupported_calls_are_refused_at_apply_time(
    fleet: Fleet, body: str, pointer: str
) -> None:
    await rejected_naming_the_pointer(fleet, body, pointer)
