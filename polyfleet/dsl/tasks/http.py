"""`call: http`: one HTTP request through the host's shared ``httpx.AsyncClient``.

The client's own settings (timeouts, limits, proxies) apply; a per-task `timeout` bounds
the whole call. Cancelling the task closes the connection, so the server sees the
request aborted. A status outside 200-299 (200-399 with `redirect: true`) and transport
failures raise a communication error carrying the status, which `try`/`catch` can catch.
`endpoint.authentication` becomes the request's ``httpx.Auth`` through
:func:`polyfleet.dsl.tasks.authentication.authenticate` (basic, bearer, digest, oauth2, oidc).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from polyfleet.dsl.checks import Checker
from polyfleet.dsl.errors import COMMUNICATION, EXPRESSION, WorkflowError
from polyfleet.dsl.expressions import is_expression
from polyfleet.dsl.registry import CallFunction, StepResult
from polyfleet.dsl.runtime import Runtime, TaskCall
from polyfleet.dsl.tasks.authentication import authenticate, check_authentication

HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
HTTP_OUTPUTS = frozenset({"content", "response", "raw"})
_HTTP_KEYS = frozenset({"method", "endpoint", "headers", "body", "query", "output", "redirect"})
_TEMPLATE_VARIABLE = re.compile(r"\{([^{}]+)\}")
_DETAIL_LIMIT = 500


def check_http(c: Checker, p: str, args: Mapping[str, Any], variables: frozenset[str]) -> None:
    """The `with` of `call: http`."""
    c.keys(p, args, _HTTP_KEYS, required=("method", "endpoint"))
    method = args.get("method")
    if "method" in args and c.string(f"{p}/method", method, "'method'"):
        assert isinstance(method, str)
        if is_expression(method):
            c.template(f"{p}/method", method, variables)
        elif method.upper() not in HTTP_METHODS:
            c.add(f"{p}/method", f"unsupported HTTP method '{method}'")
    if "endpoint" in args:
        _endpoint(c, f"{p}/endpoint", args["endpoint"], variables)
    for key in ("headers", "query"):
        if key in args:
            value = args[key]
            if not (isinstance(value, Mapping) or is_expression(value)):
                c.add(f"{p}/{key}", f"'{key}' must be an object or an expression")
            c.template(f"{p}/{key}", value, variables)
    if "body" in args:
        c.template(f"{p}/body", args["body"], variables)
    if "output" in args and args["output"] not in HTTP_OUTPUTS:
        c.add(f"{p}/output", "'output' must be one of content, response, raw")
    if "redirect" in args and not isinstance(args["redirect"], bool):
        c.add(f"{p}/redirect", "'redirect' must be true or false")


def _endpoint(c: Checker, p: str, value: Any, variables: frozenset[str]) -> None:
    if isinstance(value, str):
        if c.string(p, value, "'endpoint'"):
            c.template(p, value, variables)
        return
    endpoint = c.members(
        p, value, "'endpoint' (a URI or {uri})", {"uri", "authentication"}, required=("uri",)
    )
    if endpoint is None:
        return
    if "uri" in endpoint and c.string(f"{p}/uri", endpoint["uri"], "'uri'"):
        c.template(f"{p}/uri", endpoint["uri"], variables)
    if "authentication" in endpoint:
        check_authentication(c, f"{p}/authentication", endpoint["authentication"], variables)


async def call_http(rt: Runtime, call: TaskCall) -> StepResult:
    """Send the request described by `with`; output per `with.output` (default content)."""
    args: Mapping[str, Any] = call.definition["with"]
    variables = rt.variables(call, call.input)
    data = call.input
    method = str(rt.template(args["method"], data, variables)).upper()
    endpoint = args["endpoint"]
    auth: Any = None
    if isinstance(endpoint, Mapping):
        endpoint, auth = endpoint["uri"], endpoint.get("authentication")
    uri = (
        str(rt.template(endpoint, data, variables))
        if is_expression(endpoint)
        else _expand(endpoint, data)
    )
    headers = _strings(rt.template(args.get("headers") or {}, data, variables), "headers")
    query = _strings(rt.template(args.get("query") or {}, data, variables), "query")
    if auth is not None:
        # Resolved once per call; its credentials are redacted from here on.
        credentials: dict[str, Any] = {"auth": await authenticate(rt, auth, data, variables)}
    else:
        credentials = {}
    body = rt.template(args.get("body"), data, variables)
    content: dict[str, Any] = {}
    if isinstance(body, str):
        content["content"] = body.encode()
    elif body is not None:
        content["json"] = body
    try:
        # httpx's `params=` would replace a query string already in the endpoint: merge.
        url = httpx.URL(uri).copy_merge_params(query) if query else httpx.URL(uri)
        response = await rt.http.request(
            method, url, headers=headers, follow_redirects=False, **content, **credentials
        )
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise WorkflowError(
            COMMUNICATION,
            500,
            title="HTTP request failed",
            detail=f"{method} {uri}: {type(exc).__name__}: {exc}",
        ) from None
    ceiling = 400 if args.get("redirect", False) else 300
    if not 200 <= response.status_code < ceiling:
        raise WorkflowError(
            COMMUNICATION,
            response.status_code,
            title=f"HTTP {response.status_code} {response.reason_phrase}".strip(),
            detail=f"{method} {uri} answered {response.status_code}: "
            + response.text[:_DETAIL_LIMIT],
        )
    return StepResult(_output(args.get("output", "content"), method, uri, headers, response))


def _expand(template: str, data: Any) -> str:
    """RFC 6570 simple string expansion of top-level input properties (`{petId}`)."""

    def value(match: re.Match[str]) -> str:
        found = data.get(match.group(1)) if isinstance(data, Mapping) else None
        if found is None:
            return ""
        if isinstance(found, Mapping | list):
            raise WorkflowError(
                EXPRESSION,
                400,
                title="Invalid URI template variable",
                detail=f"'{match.group(1)}' must be a string, number or boolean",
            )
        text = json.dumps(found) if isinstance(found, bool) else str(found)
        return quote(text, safe="")

    return _TEMPLATE_VARIABLE.sub(value, template)


def _strings(values: Any, what: str) -> dict[str, str]:
    """Header or query values as strings (booleans as JSON, nulls dropped)."""
    if not isinstance(values, Mapping):
        raise WorkflowError(EXPRESSION, 400, title=f"Invalid {what}", detail="must be an object")
    out: dict[str, str] = {}
    for key, item in values.items():
        if item is None:
            continue
        out[str(key)] = item if isinstance(item, str) else json.dumps(item)
    return out


def _output(
    kind: str, method: str, uri: str, headers: Mapping[str, str], response: httpx.Response
) -> Any:
    if kind == "raw":
        return base64.b64encode(response.content).decode() if response.content else None
    content = _content(response)
    if kind == "content":
        return content
    return {
        "request": {
            "method": method.lower(),
            "uri": str(response.request.url) if response.request else uri,
            # Credentials stay in the runner: the response object flows into task data.
            "headers": {k: v for k, v in headers.items() if k.lower() != "authorization"},
        },
        "statusCode": response.status_code,
        "headers": dict(response.headers),
        "content": content,
    }


def _content(response: httpx.Response) -> Any:
    """The body, deserialized for JSON, as text for text types, else base64."""
    if not response.content:
        return None
    kind = response.headers.get("content-type", "").lower()
    if "json" in kind:
        try:
            return response.json()
        except ValueError:
            return response.text
    if kind.startswith("text/") or "xml" in kind or "x-www-form-urlencoded" in kind:
        return response.text
    if not kind:
        try:
            return response.content.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return base64.b64encode(response.content).decode()


HTTP = CallFunction("http", check_http, call_http)
