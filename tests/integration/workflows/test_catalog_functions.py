"""Catalog functions and functions by URL, through a fleet and a catalog on 127.0.0.1.

The orchestrator fetches the definitions when the workflow is applied, from the URL
prefixes POLYFLEET_DSL_FUNCTION_SOURCES allows, and stores them with the workflow; the
runner runs what was stored and never fetches (a changed catalog changes nothing until the
workflow is applied again).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from temporalio.client import Client

from polyfleet.config import ExecutionSettings
from polyfleet.v1 import common_pb2, workflow_pb2
from tests.conftest import Fleet, start_fleet, stopping
from tests.helpers import free_port
from tests.http_server import ThreadedServer
from tests.integration.workflows.conftest import (
    apply_workflow,
    document,
    finish,
    output,
    start,
    tasks,
)

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED

GREET = """\
input:
  schema:
    document: {type: object, required: [name], properties: {name: {type: string}}}
set:
  greeting: '${ "Hello " + .name }'
"""
SHOUT = '{"set": {"loud": "${ .text | ascii_upcase }"}}'


class Catalog(ThreadedServer):
    """Serves ``files`` (path → text) under its URL; any other path is 404."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.fetched: list[str] = []
        super().__init__([Route("/{path:path}", self._serve)])

    async def _serve(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        self.fetched.append(path)
        if path not in self.files:
            return PlainTextResponse("no such function", status_code=404)
        return PlainTextResponse(self.files[path])


@pytest.fixture(scope="module")
def catalog() -> Iterator[Catalog]:
    server = Catalog()
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture
async def fleet(temporal_client: Client, tmp_path: Path, catalog: Catalog) -> AsyncIterator[Fleet]:
    """A fleet allowed to fetch functions from the catalog's /catalog/ and /fns/ only."""
    catalog.files = {
        "/catalog/functions/greet/1.0.0/function.yaml": GREET,
        "/fns/shout.json": SHOUT,
    }
    catalog.fetched.clear()
    sources = [f"{catalog.url}/catalog/", f"{catalog.url}/fns/"]
    executions = ExecutionSettings(dsl_function_sources=sources)
    async with stopping(
        await start_fleet(temporal_client, tmp_path, executions=executions)
    ) as started:
        yield started


def calls(catalog: Catalog, greet: str = "greet:1.0.0@mine", shout: str = "shout.json") -> str:
    return f"""
        use:
          catalogs:
            mine: {{endpoint: {{uri: '{catalog.url}/catalog'}}}}
        do:
          - hello:
              call: '{greet}'
              with: {{name: '${{ .who }}'}}
          - loud:
              call: '{catalog.url}/fns/{shout}'
              with: {{text: '${{ .greeting }}'}}
        """


async def test_catalog_and_url_functions_run_what_was_resolved_at_apply_time(
    fleet: Fleet, catalog: Catalog
) -> None:
    applied = await apply_workflow(fleet, "greeter", calls(catalog))
    url = f"{catalog.url}/fns/shout.json"
    assert {ref: json.loads(body) for ref, body in applied.resolved_functions.items()} == {
        "greet:1.0.0@mine": {
            "input": {
                "schema": {
                    "document": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}},
                    }
                }
            },
            "set": {"greeting": '${ "Hello " + .name }'},
        },
        url: {"set": {"loud": "${ .text | ascii_upcase }"}},
    }
    assert catalog.fetched == ["/catalog/functions/greet/1.0.0/function.yaml", "/fns/shout.json"]
    # The catalog changes after the apply: the applied workflow does not.
    catalog.files["/fns/shout.json"] = '{"set": {"loud": "changed"}}'
    done = await finish(fleet, (await start(fleet, "greeter", {"who": "Ada"})).id)
    assert done.status.phase == COMPLETED, done.status.error
    assert output(done) == {"loud": "HELLO ADA"}
    assert catalog.fetched == ["/catalog/functions/greet/1.0.0/function.yaml", "/fns/shout.json"]
    assert (
        tasks(done)[f"/do/1/loud/function/{url.replace('/', '~1')}"].phase
        == common_pb2.TASK_PHASE_COMPLETED
    )
    assert (
        tasks(done)["/do/0/hello/function/greet:1.0.0@mine"].phase
        == common_pb2.TASK_PHASE_COMPLETED
    )
    # Applying again resolves again; what a client sends in the field is ignored.
    again = await fleet.workflows.ApplyWorkflow(
        workflow_pb2.ApplyWorkflowRequest(
            workflow=workflow_pb2.Workflow(
                name="greeter",
                document=document("greeter", calls(catalog)),
                resolved_functions={url: '{"set": {"loud": "forged"}}'},
            )
        )
    )
    assert json.loads(again.resolved_functions[url]) == {"set": {"loud": "changed"}}
    done = await finish(fleet, (await start(fleet, "greeter", {"who": "Ada"})).id)
    assert output(done) == {"loud": "changed"}


async def test_unresolvable_functions_are_refused_when_applied(
    fleet: Fleet, catalog: Catalog
) -> None:
    async def refused(body: str) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await apply_workflow(fleet, "broken", body)
        return raised.value

    # 404 in a catalog: INVALID_ARGUMENT naming the pointer of the call.
    error = await refused(calls(catalog, greet="greet:9.9.9@mine"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith(
        "workflow.document/do/0/hello/call: the function definition "
        f"{catalog.url}/catalog/functions/greet/9.9.9/function.yaml is not found (HTTP 404)"
    )
    # Outside the allowed prefixes: INVALID_ARGUMENT naming the pointer and the setting,
    # without a request to the source.
    fetched = len(catalog.fetched)
    error = await refused(calls(catalog, shout="../elsewhere/shout.json"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "workflow.document/do/1/loud/call" in (error.details() or "")
    error = await refused(
        calls(catalog).replace(f"'{catalog.url}/fns/shout.json'", f"'{catalog.url}/other/f.json'")
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith("workflow.document/do/1/loud/call: ")
    assert "POLYFLEET_DSL_FUNCTION_SOURCES" in (error.details() or "")
    # An unknown catalog: INVALID_ARGUMENT before anything is fetched.
    error = await refused(calls(catalog, greet="greet:1.0.0@unknown"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "workflow.document/do/0/hello/call" in (error.details() or "")
    assert "unknown catalog 'unknown'" in (error.details() or "")
    assert len(catalog.fetched) == fetched
    # A fetched definition that is not a valid task: INVALID_ARGUMENT at the call.
    catalog.files["/fns/bad.json"] = '{"set": {"x": 1}, "bogus": true}'
    error = await refused(calls(catalog, shout="bad.json"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "workflow.document/do/1/loud/call" in (error.details() or "")
    assert "at /bogus: unknown property 'bogus'" in (error.details() or "")
    listed = await fleet.workflows.ListWorkflows(workflow_pb2.ListWorkflowsRequest())
    assert list(listed.workflows) == []


async def test_an_unreachable_source_is_unavailable_naming_the_url(
    temporal_client: Client, tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/fns/"
    executions = ExecutionSettings(dsl_function_sources=[closed])
    async with stopping(
        await start_fleet(temporal_client, tmp_path, with_runner=False, executions=executions)
    ) as fleet:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await apply_workflow(fleet, "offline", f"do:\n  - a: {{call: '{closed}f.json'}}\n")
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert f"cannot fetch the function definition {closed}f.json" in (raised.value.details() or "")
