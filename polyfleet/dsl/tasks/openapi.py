"""`call: openapi`: one operation of an OpenAPI 3.x (or Swagger 2.0) document, sent as `call: http`.

``with: {document: {endpoint}, operationId, parameters, authentication, output, redirect}``.
The document (JSON or YAML) is read from an http(s) URL through the host's HTTP client, or
from a `file://` URL or absolute path on the runner, once per run. The operation's declared
parameters (path item's and operation's, local `$ref`s resolved) are taken from
`parameters` by name and placed by their `in` (path, query, header, cookie); the request
body is `parameters.body`, or else the parameters the operation does not declare, as one
JSON object (Swagger 2.0: the `in: body` parameter). The server is the operation's, path's
or document's first `servers` entry (variables at their defaults; Swagger 2.0:
`schemes`/`host`/`basePath`), resolved against the document's URL. The request then goes
through `call: http` itself, so output modes, `redirect`, errors and `authentication`
(passed as the endpoint's) behave exactly as there.
"""

from __future__ import annotations

import asyncio
import json
import re
import weakref
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
import yaml

from polyfleet.dsl.checks import Checker
from polyfleet.dsl.errors import COMMUNICATION, EXPRESSION, RUNTIME, VALIDATION, WorkflowError
from polyfleet.dsl.expressions import is_expression
from polyfleet.dsl.registry import CallFunction, StepResult
from polyfleet.dsl.runtime import Runtime, TaskCall
from polyfleet.dsl.tasks.http import HTTP_OUTPUTS, call_http, check_http

_KEYS = frozenset({"document", "operationId", "parameters", "authentication", "output", "redirect"})
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_SERVER_VARIABLE = re.compile(r"\{([^{}]+)\}")
#: The scope variable the delegated `call: http` reads the built request from.
_REQUEST = "__openapi_request"

# Parsed documents per run: a run asks for each document once.
_CACHE: weakref.WeakKeyDictionary[Runtime, dict[str, Any]] = weakref.WeakKeyDictionary()


def check_resource(c: Checker, p: str, value: Any, variables: frozenset[str]) -> None:
    """An external resource `{name?, endpoint: URI | {uri}}` (no authentication)."""
    resource = c.members(p, value, "an external resource", {"name", "endpoint"}, ("endpoint",))
    if resource is None or "endpoint" not in resource:
        return
    endpoint = resource["endpoint"]
    if isinstance(endpoint, Mapping):
        block = c.members(
            f"{p}/endpoint",
            endpoint,
            "'endpoint'",
            {"uri"},
            required=("uri",),
            unsupported=("authentication",),
        )
        if block is None or "uri" not in block:
            return
        p, endpoint = f"{p}/endpoint/uri", block["uri"]
    else:
        p = f"{p}/endpoint"
    if c.string(p, endpoint, "the resource URI"):
        c.template(p, endpoint, variables)


def resource_uri(rt: Runtime, resource: Mapping[str, Any], call: TaskCall) -> str:
    """The URI of a checked external resource, its expression evaluated."""
    endpoint = resource["endpoint"]
    if isinstance(endpoint, Mapping):
        endpoint = endpoint["uri"]
    return str(rt.template(endpoint, call.input, rt.variables(call, call.input)))


async def read_resource(rt: Runtime, uri: str, what: str) -> tuple[str, str]:
    """(text, base URL) of an http(s) URL, a `file://` URL or an absolute path.

    Raises:
        WorkflowError: a communication error when it cannot be read (no content quoted).
    """
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("http", "https"):
        try:
            response = await rt.http.get(uri, follow_redirects=True)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _unreadable(what, uri, 500, f"{type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise _unreadable(what, uri, response.status_code, f"HTTP {response.status_code}")
        return response.text, str(response.url)
    if scheme == "file" or (not scheme and uri.startswith("/")):
        parts = urlsplit(uri)
        path = Path(parts.path if scheme == "file" else uri)
        if parts.netloc not in ("", "localhost") or not path.is_absolute():
            raise _unreadable(what, uri, 400, "a file must be an absolute path (file:///dir/f)")
        try:
            return await asyncio.to_thread(path.read_text, encoding="utf-8"), path.as_uri()
        except (OSError, UnicodeDecodeError) as exc:
            raise _unreadable(what, uri, 404, type(exc).__name__) from None
    raise _unreadable(what, uri, 400, "expected an http(s) URL, a file:// URL or an absolute path")


def _unreadable(what: str, uri: str, status: int, reason: str) -> WorkflowError:
    return WorkflowError(
        COMMUNICATION, status, title=f"Cannot read the {what}", detail=f"{uri}: {reason}"
    )


def check_openapi(c: Checker, p: str, args: Mapping[str, Any], variables: frozenset[str]) -> None:
    """The `with` of `call: openapi`."""
    c.keys(p, args, _KEYS, required=("document", "operationId"))
    if "document" in args:
        check_resource(c, f"{p}/document", args["document"], variables)
    operation = args.get("operationId")
    if "operationId" in args and c.string(f"{p}/operationId", operation, "'operationId'"):
        c.template(f"{p}/operationId", operation, variables)
    if "parameters" in args:
        value = args["parameters"]
        if not (isinstance(value, Mapping) or is_expression(value)):
            c.add(f"{p}/parameters", "'parameters' must be an object or an expression")
        c.template(f"{p}/parameters", value, variables)
    if "output" in args and args["output"] not in HTTP_OUTPUTS:
        c.add(f"{p}/output", "'output' must be one of content, response, raw")
    if "redirect" in args and not isinstance(args["redirect"], bool):
        c.add(f"{p}/redirect", "'redirect' must be true or false")
    if "authentication" in args:
        # `call: http`'s own check, its pointers moved from the endpoint to here.
        start = len(c.problems)
        endpoint = {"uri": "http://openapi", "authentication": args["authentication"]}
        check_http(c, p, {"method": "get", "endpoint": endpoint}, variables)
        moved = f"{p}/endpoint/authentication"
        c.problems[start:] = [
            replace(problem, pointer=f"{p}/authentication" + problem.pointer[len(moved) :])
            for problem in c.problems[start:]
            if problem.pointer.startswith(moved)
        ]


async def call_openapi(rt: Runtime, call: TaskCall) -> StepResult:
    """Build the operation's request and send it through `call: http`."""
    args: Mapping[str, Any] = call.definition["with"]
    variables = rt.variables(call, call.input)
    uri = resource_uri(rt, args["document"], call)
    spec, base = await _document(rt, uri)
    operation_id = str(rt.template(args["operationId"], call.input, variables))
    found = _operation(spec, operation_id)
    if found is None:
        raise WorkflowError(
            RUNTIME,
            404,
            title="Unknown OpenAPI operation",
            detail=f"operationId '{operation_id}' is not in the document {uri}",
        )
    path, method, path_item, operation = found
    values = rt.template(args.get("parameters") or {}, call.input, variables)
    if not isinstance(values, Mapping):
        raise WorkflowError(
            EXPRESSION, 400, title="Invalid parameters", detail="'parameters' must be an object"
        )
    request = _request(spec, base, path, method, path_item, operation, values, operation_id)
    endpoint: dict[str, Any] = {"uri": f"${{ ${_REQUEST}.uri }}"}
    if "authentication" in args:
        endpoint["authentication"] = args["authentication"]
    http_args: dict[str, Any] = {
        "method": method,
        "endpoint": endpoint,
        "headers": f"${{ ${_REQUEST}.headers }}",
        "query": f"${{ ${_REQUEST}.query }}",
    }
    if request["body"] is not None:
        http_args["body"] = f"${{ ${_REQUEST}.body }}"
    for key in ("output", "redirect"):
        if key in args:
            http_args[key] = args[key]
    delegated = replace(
        call,
        definition={"call": "http", "with": http_args},
        scope=call.scope.with_variables(**{_REQUEST: request}),
    )
    return await call_http(rt, delegated)


async def _document(rt: Runtime, uri: str) -> tuple[Mapping[str, Any], str]:
    cache = _CACHE.setdefault(rt, {})
    if uri not in cache:
        text, base = await read_resource(rt, uri, "OpenAPI document")
        try:
            spec = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError):
            spec = None
        if not isinstance(spec, Mapping) or not (
            isinstance(spec.get("paths"), Mapping) and ("openapi" in spec or "swagger" in spec)
        ):
            raise WorkflowError(
                COMMUNICATION,
                500,
                title="Invalid OpenAPI document",
                detail=f"{uri} is not an OpenAPI 3.x or Swagger 2.0 document (JSON or YAML)",
            )
        cache[uri] = (spec, base)
    spec, base = cache[uri]
    return spec, base


def _operation(
    spec: Mapping[str, Any], operation_id: str
) -> tuple[str, str, Mapping[str, Any], Mapping[str, Any]] | None:
    for path, item in spec["paths"].items():
        if not isinstance(item, Mapping):
            continue
        for method in _METHODS:
            operation = item.get(method)
            if isinstance(operation, Mapping) and operation.get("operationId") == operation_id:
                return str(path), method, item, operation
    return None


def _resolve(spec: Mapping[str, Any], value: Any) -> Any:
    """Follow a local `$ref` (`#/components/parameters/x`); other values pass through."""
    seen = 0
    while isinstance(value, Mapping) and isinstance(value.get("$ref"), str) and seen < 16:
        ref, seen = value["$ref"], seen + 1
        if not ref.startswith("#/"):
            raise WorkflowError(
                RUNTIME, 400, title="Unsupported OpenAPI reference", detail=f"'{ref}' is not local"
            )
        target: Any = spec
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, Mapping) else None
        value = target
    return value


def _request(
    spec: Mapping[str, Any],
    base: str,
    path: str,
    method: str,
    path_item: Mapping[str, Any],
    operation: Mapping[str, Any],
    values: Mapping[str, Any],
    operation_id: str,
) -> dict[str, Any]:
    declared: dict[tuple[str, str], Mapping[str, Any]] = {}
    for source in (path_item.get("parameters"), operation.get("parameters")):
        for item in source if isinstance(source, list) else []:
            param = _resolve(spec, item)
            if isinstance(param, Mapping) and "name" in param and "in" in param:
                declared[(str(param["name"]), str(param["in"]))] = param
    headers: dict[str, Any] = {}
    query: dict[str, Any] = {}
    cookies: list[str] = []
    body: Any = None
    used: set[str] = set()
    for (name, where), param in declared.items():
        value = values.get(name)
        used.add(name)
        if value is None:
            if param.get("required") or where == "path":
                raise WorkflowError(
                    VALIDATION,
                    400,
                    title="Missing OpenAPI parameter",
                    detail=f"operation '{operation_id}' requires the {where} parameter '{name}'",
                )
            continue
        if where == "path":
            text = json.dumps(value) if isinstance(value, bool) else str(value)
            path = path.replace("{" + name + "}", quote(text, safe=""))
        elif where == "query":
            query[name] = value
        elif where == "header":
            headers[name] = value
        elif where == "cookie":
            cookies.append(f"{name}={quote(str(value), safe='')}")
        elif where == "body":  # Swagger 2.0
            body = value
        else:
            raise WorkflowError(
                RUNTIME,
                400,
                title="Unsupported OpenAPI parameter",
                detail=f"parameter '{name}' is in '{where}', which this runtime does not send",
            )
    if cookies:
        headers["Cookie"] = "; ".join(cookies)
    if "requestBody" in operation and body is None:
        if "body" in values and "body" not in used:
            body = values["body"]
        else:
            rest = {k: v for k, v in values.items() if k not in used}
            body = rest or None
    return {"uri": _server(spec, base, path_item, operation) + path, "headers": headers,
            "query": query, "body": body}  # fmt: skip


def _server(
    spec: Mapping[str, Any], base: str, path_item: Mapping[str, Any], operation: Mapping[str, Any]
) -> str:
    if "swagger" in spec:
        parts = urlsplit(base)
        schemes = spec.get("schemes")
        scheme = schemes[0] if isinstance(schemes, list) and schemes else parts.scheme
        host = spec.get("host") or parts.netloc
        return f"{scheme}://{host}{spec.get('basePath', '')}".rstrip("/")
    url = "/"
    for source in (operation, path_item, spec):
        servers = source.get("servers")
        if isinstance(servers, list) and servers and isinstance(servers[0], Mapping):
            server = servers[0]
            found = server.get("variables")
            defaults: Mapping[str, Any] = found if isinstance(found, Mapping) else {}

            def default(match: re.Match[str], defaults: Mapping[str, Any] = defaults) -> str:
                variable = defaults.get(match.group(1))
                if isinstance(variable, Mapping) and "default" in variable:
                    return str(variable["default"])
                return match.group(0)

            url = _SERVER_VARIABLE.sub(default, str(server.get("url", "/")))
            break
    return urljoin(base, url).rstrip("/")


OPENAPI = CallFunction("openapi", check_openapi, call_openapi)
