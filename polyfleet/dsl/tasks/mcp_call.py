"""`call: mcp`: one request to a Model Context Protocol server (DSL 1.0.3's MCP call).

``with: {method, parameters, transport: {http: {endpoint, headers}}, protocolVersion, timeout,
client: {name, version}}``. Each call opens one session over the streamable HTTP transport
(the same `mcp` SDK the agents' MCP tools use), initializes it, sends the one request and
closes it. Methods: `tools/list`, `tools/call` (`parameters: {name, arguments}`),
`prompts/list`, `prompts/get` (`{name, arguments}`), `resources/list`, `resources/read`
(`{uri}`), `resources/templates/list`. The output is the JSON-RPC result (camelCase members,
absent ones omitted). A failure — the server unreachable, a JSON-RPC error, a tool result with
`isError` — is a runtime error, as the spec says. The stdio transport is rejected: a workflow
document may not start processes on a runner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from polyfleet.dsl.checks import Checker
from polyfleet.dsl.durations import parse_duration
from polyfleet.dsl.errors import EXPRESSION, RUNTIME, TIMEOUT, DslError, WorkflowError
from polyfleet.dsl.expressions import is_expression
from polyfleet.dsl.registry import CallFunction, StepResult
from polyfleet.dsl.runtime import RUNTIME_DESCRIPTOR, Runtime, TaskCall

_KEYS = frozenset({"method", "parameters", "transport", "protocolVersion", "timeout", "client"})
_METHODS = frozenset(
    {
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/read",
        "resources/templates/list",
    }
)
_DEFAULT_TIMEOUT = 60.0
#: The protocol versions the `mcp` SDK speaks (`mcp.shared.version`; a unit test keeps them
#: equal). The SDK itself is imported only when a call runs: validation (the API, the CLI)
#: does not pay for importing it.
SUPPORTED_PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
_STDIO = (
    "the stdio transport is not supported: a workflow document may not start processes "
    "on a runner (serve the MCP server over streamable HTTP and use transport.http)"
)


def check_mcp(c: Checker, p: str, args: Mapping[str, Any], variables: frozenset[str]) -> None:
    """The `with` of `call: mcp`."""
    c.keys(p, args, _KEYS, required=("method", "transport"))
    method = args.get("method")
    if "method" in args and method not in _METHODS:
        c.add(f"{p}/method", "'method' must be one of " + ", ".join(sorted(_METHODS)))
    if "parameters" in args:
        value = args["parameters"]
        if not (isinstance(value, Mapping) or is_expression(value)):
            c.add(f"{p}/parameters", "'parameters' must be an object or an expression")
        c.template(f"{p}/parameters", value, variables)
    version = args.get("protocolVersion")
    if "protocolVersion" in args and version not in SUPPORTED_PROTOCOL_VERSIONS:
        c.add(
            f"{p}/protocolVersion",
            "'protocolVersion' must be one of " + ", ".join(SUPPORTED_PROTOCOL_VERSIONS),
        )
    if "timeout" in args:
        c.duration(f"{p}/timeout", args["timeout"])
    if "client" in args:
        client = c.members(
            f"{p}/client", args["client"], "'client'", {"name", "version"}, ("name", "version")
        )
        for key in ("name", "version"):
            if client is not None and key in client:
                c.string(f"{p}/client/{key}", client[key], f"'{key}'")
    if "transport" in args:
        _check_transport(c, f"{p}/transport", args["transport"], variables)


def _check_transport(c: Checker, p: str, value: Any, variables: frozenset[str]) -> None:
    transport = c.members(p, value, "'transport'", {"http", "stdio", "options"})
    if transport is None:
        return
    if "stdio" in transport:
        c.add(f"{p}/stdio", _STDIO)
    if "options" in transport:
        c.add(f"{p}/options", "'options' is not supported")
    if "http" not in transport:
        if "stdio" not in transport:
            c.add(f"{p}/http", "missing required property 'http'")
        return
    http = c.members(
        f"{p}/http", transport["http"], "'http'", {"endpoint", "headers"}, ("endpoint",)
    )
    if http is None:
        return
    if "endpoint" in http:
        endpoint = http["endpoint"]
        where = f"{p}/http/endpoint"
        if isinstance(endpoint, Mapping):
            block = c.members(
                where, endpoint, "'endpoint'", {"uri"}, ("uri",), unsupported=("authentication",)
            )
            endpoint, where = (block or {}).get("uri"), f"{where}/uri"
        if endpoint is not None and c.string(where, endpoint, "the MCP endpoint"):
            c.template(where, endpoint, variables)
    if "headers" in http:
        headers = c.mapping(f"{p}/http/headers", http["headers"], "'headers'")
        if headers is not None:
            c.template(f"{p}/http/headers", headers, variables)


async def call_mcp(rt: Runtime, call: TaskCall) -> StepResult:
    """Open a session, send the request, close; the output is the JSON-RPC result."""
    args: Mapping[str, Any] = call.definition["with"]
    variables = rt.variables(call, call.input)
    http = args["transport"]["http"]
    endpoint = http["endpoint"]
    if isinstance(endpoint, Mapping):
        endpoint = endpoint["uri"]
    url = str(rt.template(endpoint, call.input, variables))
    headers = rt.template(http.get("headers") or {}, call.input, variables)
    params = rt.template(args.get("parameters") or {}, call.input, variables)
    if not isinstance(params, Mapping) or not isinstance(headers, Mapping):
        raise WorkflowError(
            EXPRESSION, 400, title="Invalid MCP call", detail="parameters and headers: objects"
        )
    method = str(args["method"])
    client = args.get("client") or {
        "name": RUNTIME_DESCRIPTOR["name"],
        "version": RUNTIME_DESCRIPTOR["version"],
    }
    seconds = parse_duration(args["timeout"]) if "timeout" in args else _DEFAULT_TIMEOUT
    where = f"MCP {method} at {url}"
    try:
        async with asyncio.timeout(seconds):
            result = await _request(
                url,
                {str(k): str(v) for k, v in headers.items() if v is not None},
                (str(client["name"]), str(client["version"])),
                method,
                params,
            )
    except TimeoutError:
        raise WorkflowError(
            TIMEOUT, 408, title="MCP call timed out", detail=f"{where}: no answer in {seconds:g}s"
        ) from None
    except (DslError, asyncio.CancelledError):
        raise
    except Exception as exc:  # noqa: BLE001 - transport and protocol failures alike
        raise WorkflowError(
            RUNTIME, _status(exc), title="MCP call failed", detail=f"{where}: {_reason(exc)}"
        ) from None
    output = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    if output.get("isError"):
        texts = [item.get("text", "") for item in output.get("content", [])]
        raise WorkflowError(
            RUNTIME,
            500,
            title="MCP tool failed",
            detail=f"{where}: tool '{params.get('name')}' answered an error: " + " ".join(texts),
        )
    return StepResult(output)


async def _request(
    url: str, headers: dict[str, str], client: tuple[str, str], method: str, p: Mapping[str, Any]
) -> Any:
    from mcp import ClientSession  # imported here: see SUPPORTED_PROTOCOL_VERSIONS
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client
    from mcp.types import Implementation

    info = Implementation(name=client[0], version=client[1])
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(url, http_client=http) as (read, write, _session_id),
        ClientSession(read, write, client_info=info) as session,
    ):
        await session.initialize()
        if method == "tools/list":
            return await session.list_tools()
        if method == "tools/call":
            return await session.call_tool(_name(p), dict(p.get("arguments") or {}))
        if method == "prompts/list":
            return await session.list_prompts()
        if method == "prompts/get":
            arguments = {str(k): str(v) for k, v in (p.get("arguments") or {}).items()}
            return await session.get_prompt(_name(p), arguments)
        if method == "resources/list":
            return await session.list_resources()
        if method == "resources/read":
            return await session.read_resource(_required(p, "uri"))  # type: ignore[arg-type]
        return await session.list_resource_templates()


def _name(params: Mapping[str, Any]) -> str:
    return _required(params, "name")


def _required(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise WorkflowError(
            EXPRESSION,
            400,
            title="Invalid MCP parameters",
            detail=f"'parameters.{key}' is required",
        )
    return value


def _status(exc: BaseException) -> int:
    from mcp.shared.exceptions import McpError

    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return 400 if isinstance(exc, McpError) else 500


def _reason(exc: BaseException) -> str:
    # MCP's anyio task groups wrap the real failure in an ExceptionGroup.
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


MCP = CallFunction("mcp", check_mcp, call_mcp)
