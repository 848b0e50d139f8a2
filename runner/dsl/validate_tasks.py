"""Validation of each task type's own properties (see validation.Checker for the walk)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from runner.dsl.expressions import IDENTIFIER, escape, is_expression

if TYPE_CHECKING:
    from runner.dsl.validation import Checker

TypeCheck = Callable[["Checker", str, Mapping[str, Any], frozenset[str], Collection[str]], None]

HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
HTTP_OUTPUTS = frozenset({"content", "response", "raw"})
_HTTP_KEYS = frozenset({"method", "endpoint", "headers", "body", "query", "output", "redirect"})
_AUTH_SUPPORTED = {"basic": ("username", "password"), "bearer": ("token",)}
_AUTH_UNSUPPORTED = frozenset({"certificate", "digest", "oauth2", "oidc", "use"})
_ERROR_KEYS = frozenset({"type", "status", "title", "detail", "instance"})
_BACKOFFS = ("constant", "linear", "exponential")


def _call(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    function = task.get("call")
    if not isinstance(function, str):
        c.add(f"{p}/call", "'call' must name a function")
        return
    if function not in ("http", "agent"):
        c.add(
            f"{p}/call",
            f"unsupported call '{function}': this runtime supports call: http and call: agent",
        )
        return
    if "with" not in task:
        c.add(f"{p}/with", "missing required property 'with'")
        return
    args = c.mapping(f"{p}/with", task["with"], "'with'")
    if args is None:
        return
    if function == "http":
        _http(c, f"{p}/with", args, variables)
    else:
        _agent(c, f"{p}/with", args, variables)


def _http(c: Checker, p: str, args: Mapping[str, Any], variables: frozenset[str]) -> None:
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
    endpoint = c.mapping(p, value, "'endpoint' (a URI or {uri})")
    if endpoint is None:
        return
    c.keys(p, endpoint, {"uri", "authentication"}, required=("uri",))
    if "uri" in endpoint and c.string(f"{p}/uri", endpoint["uri"], "'uri'"):
        c.template(f"{p}/uri", endpoint["uri"], variables)
    if "authentication" in endpoint:
        auth_p = f"{p}/authentication"
        auth = c.mapping(auth_p, endpoint["authentication"], "'authentication'")
        if auth is None:
            return
        c.keys(auth_p, auth, _AUTH_SUPPORTED, unsupported=_AUTH_UNSUPPORTED)
        if len(auth) != 1:
            c.add(auth_p, "'authentication' needs exactly one scheme (basic or bearer)")
        for scheme, fields in _AUTH_SUPPORTED.items():
            if scheme in auth:
                block = c.mapping(f"{auth_p}/{scheme}", auth[scheme], f"'{scheme}'")
                if block is not None:
                    c.keys(f"{auth_p}/{scheme}", block, fields, required=fields)
                    c.template(f"{auth_p}/{scheme}", block, variables)


def _agent(c: Checker, p: str, args: Mapping[str, Any], variables: frozenset[str]) -> None:
    c.keys(p, args, {"agent", "message"}, required=("agent", "message"))
    agent = args.get("agent")
    if "agent" in args and c.string(f"{p}/agent", agent, "'agent'"):
        assert isinstance(agent, str)
        if is_expression(agent):
            c.template(f"{p}/agent", agent, variables)
        elif c.known_agents is not None and agent not in c.known_agents:
            c.add(f"{p}/agent", f"unknown agent '{agent}'")
    if "message" in args:
        c.template(f"{p}/message", args["message"], variables)


def _do(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    c.task_list(f"{p}/do", task.get("do"), variables)


def _for(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    loop = c.mapping(f"{p}/for", task.get("for"), "'for'")
    names = {"item", "index"}
    if loop is not None:
        c.keys(f"{p}/for", loop, {"each", "in", "at"}, required=("in",))
        for key, default in (("each", "item"), ("at", "index")):
            name = loop.get(key, default)
            if not isinstance(name, str) or not IDENTIFIER.match(name):
                c.add(f"{p}/for/{key}", f"'{key}' must be a variable name such as '{default}'")
            else:
                names.discard(default)
                names.add(name)
        if "in" in loop:
            c.expression(f"{p}/for/in", loop["in"], variables)
    inner = variables | names
    if "while" in task:
        c.expression(f"{p}/while", task["while"], inner)
    if "do" not in task:
        c.add(f"{p}/do", "missing required property 'do'")
    else:
        c.task_list(f"{p}/do", task["do"], inner)


def _fork(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    fork = c.mapping(f"{p}/fork", task.get("fork"), "'fork'")
    if fork is None:
        return
    c.keys(f"{p}/fork", fork, {"branches", "compete"}, required=("branches",))
    if "compete" in fork and not isinstance(fork["compete"], bool):
        c.add(f"{p}/fork/compete", "'compete' must be true or false")
    branches = fork.get("branches")
    if "branches" not in fork:
        return
    if not isinstance(branches, list) or not branches:
        c.add(f"{p}/fork/branches", "must be a non-empty list of tasks")
        return
    for index, item in enumerate(branches):
        if not isinstance(item, Mapping) or len(item) != 1:
            c.add(f"{p}/fork/branches/{index}", "a branch must map one task name to a task")
            continue
        ((name, branch),) = item.items()
        # A branch is a single task: only continue, exit and end make sense after it.
        c.task(f"{p}/fork/branches/{index}/{escape(str(name))}", branch, variables, ())


def _raise(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    block = c.mapping(f"{p}/raise", task.get("raise"), "'raise'")
    if block is None:
        return
    c.keys(f"{p}/raise", block, {"error"}, required=("error",))
    error = block.get("error")
    if isinstance(error, str):
        named = c.use.get("errors")
        if not isinstance(named, Mapping) or error not in named:
            c.add(f"{p}/raise/error", f"unknown error '{error}' (not defined in use.errors)")
    elif "error" in block:
        check_error_object(c, f"{p}/raise/error", error, variables)


def check_error_object(c: Checker, p: str, value: Any, variables: frozenset[str]) -> None:
    """An RFC 7807 error definition, as `raise.error` or in `use.errors`."""
    error = c.mapping(p, value, "an error")
    if error is None:
        return
    c.keys(p, error, _ERROR_KEYS, required=("type", "status"))
    if "type" in error:
        c.string(f"{p}/type", error["type"], "'type'")
    status = error.get("status")
    if "status" in error and not (
        is_expression(status) or (isinstance(status, int) and not isinstance(status, bool))
    ):
        c.add(f"{p}/status", "'status' must be an integer")
    c.template(p, {k: v for k, v in error.items() if k in _ERROR_KEYS}, variables)


def _set(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    value = task.get("set")
    if not (isinstance(value, Mapping) or is_expression(value)):
        c.add(f"{p}/set", "'set' must be an object or a `${ }` expression")
    c.template(f"{p}/set", value, variables)


def _switch(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], sib: Collection[str]
) -> None:
    cases = task.get("switch")
    if not isinstance(cases, list) or not cases:
        c.add(f"{p}/switch", "must be a non-empty list of cases")
        return
    defaults = 0
    for index, item in enumerate(cases):
        if not isinstance(item, Mapping) or len(item) != 1:
            c.add(f"{p}/switch/{index}", "a case must map one case name to {when, then}")
            continue
        ((name, case),) = item.items()
        cp = f"{p}/switch/{index}/{escape(str(name))}"
        body = c.mapping(cp, case, "a switch case")
        if body is None:
            continue
        c.keys(cp, body, {"when", "then"}, required=("then",))
        if "when" in body:
            c.expression(f"{cp}/when", body["when"], variables)
        else:
            defaults += 1
            if defaults == 2:
                c.add(cp, "a switch has at most one default case (a case without 'when')")
        if "then" in body:
            c.directive(f"{cp}/then", body["then"], sib)


def _try(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    c.task_list(f"{p}/try", task.get("try"), variables)
    if "catch" not in task:
        c.add(f"{p}/catch", "missing required property 'catch'")
        return
    catch = c.mapping(f"{p}/catch", task["catch"], "'catch'")
    if catch is None:
        return
    cp = f"{p}/catch"
    c.keys(cp, catch, {"errors", "as", "when", "exceptWhen", "retry", "do"})
    name = catch.get("as", "error")
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        c.add(f"{cp}/as", "'as' must be a variable name such as 'error'")
        name = "error"
    inner = variables | {name}
    if "errors" in catch:
        errors = c.mapping(f"{cp}/errors", catch["errors"], "'errors'")
        if errors is not None:
            c.keys(f"{cp}/errors", errors, {"with"})
            if "with" in errors:
                wp = f"{cp}/errors/with"
                flt = c.mapping(wp, errors["with"], "'with'")
                if flt is not None:
                    c.keys(wp, flt, _ERROR_KEYS)
                    if "status" in flt and not isinstance(flt["status"], int):
                        c.add(f"{wp}/status", "'status' must be an integer")
    for key in ("when", "exceptWhen"):
        if key in catch:
            c.expression(f"{cp}/{key}", catch[key], inner)
    if "retry" in catch:
        retry = catch["retry"]
        if isinstance(retry, str):
            named = c.use.get("retries")
            if not isinstance(named, Mapping) or retry not in named:
                c.add(f"{cp}/retry", f"unknown retry policy '{retry}' (not in use.retries)")
        else:
            check_retry(c, f"{cp}/retry", retry, inner)
    if "do" in catch:
        c.task_list(f"{cp}/do", catch["do"], inner)


def check_retry(c: Checker, p: str, value: Any, variables: frozenset[str]) -> None:
    """A retry policy, inline in `catch.retry` or in `use.retries`."""
    retry = c.mapping(p, value, "a retry policy")
    if retry is None:
        return
    c.keys(p, retry, {"delay", "backoff", "limit", "jitter", "when", "exceptWhen"})
    if "delay" in retry:
        c.duration(f"{p}/delay", retry["delay"])
    if "backoff" in retry:
        backoff = c.mapping(f"{p}/backoff", retry["backoff"], "'backoff'")
        if backoff is not None:
            c.keys(f"{p}/backoff", backoff, _BACKOFFS)
            if len(backoff) != 1:
                c.add(
                    f"{p}/backoff", "'backoff' needs exactly one of constant, linear, exponential"
                )
            for kind, params in backoff.items():
                if kind in _BACKOFFS and params not in (None, {}):
                    c.add(f"{p}/backoff/{kind}", "backoff parameters are not supported; use {}")
    if "limit" in retry:
        _retry_limit(c, f"{p}/limit", retry["limit"])
    if "jitter" in retry:
        jitter = c.mapping(f"{p}/jitter", retry["jitter"], "'jitter'")
        if jitter is not None:
            c.keys(f"{p}/jitter", jitter, {"from", "to"}, required=("from", "to"))
            for key in ("from", "to"):
                if key in jitter:
                    c.duration(f"{p}/jitter/{key}", jitter[key])
    for key in ("when", "exceptWhen"):
        if key in retry:
            c.expression(f"{p}/{key}", retry[key], variables | {"error"})


def _retry_limit(c: Checker, p: str, value: Any) -> None:
    limit = c.mapping(p, value, "'limit'")
    if limit is None:
        return
    c.keys(p, limit, {"attempt", "duration"})
    if "duration" in limit:
        c.duration(f"{p}/duration", limit["duration"])
    if "attempt" in limit:
        attempt = c.mapping(f"{p}/attempt", limit["attempt"], "'attempt'")
        if attempt is not None:
            c.keys(f"{p}/attempt", attempt, {"count"}, unsupported={"duration"})
            count = attempt.get("count")
            if "count" in attempt and (
                not isinstance(count, int) or isinstance(count, bool) or count < 0
            ):
                c.add(f"{p}/attempt/count", "'count' must be a non-negative integer")


def _wait(
    c: Checker, p: str, task: Mapping[str, Any], _v: frozenset[str], _s: Collection[str]
) -> None:
    c.duration(f"{p}/wait", task.get("wait"))


TYPE_CHECKS: Mapping[str, TypeCheck] = {
    "call": _call,
    "do": _do,
    "for": _for,
    "fork": _fork,
    "raise": _raise,
    "set": _set,
    "switch": _switch,
    "try": _try,
    "wait": _wait,
}
