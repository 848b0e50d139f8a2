"""Authentication policies of calls: `endpoint.authentication` and `use.authentications`.

A call that takes an `authentication` (`call: http`, and what goes through it) hands the
mapping to :func:`authenticate`, which resolves it — a named policy from
`use.authentications`, a scheme's properties from a secret (`basic: {use: SECRET}`), `${ }`
values — and returns the ``httpx.Auth`` to send the request with:

- `basic` and `digest` (RFC 7617 / RFC 7616 challenge and response, httpx's own);
- `bearer`;
- `oauth2` (grants `client_credentials` and `password`; the token endpoint is the
  authority joined with `endpoints.token`, default `/oauth2/token`) and `oidc` (the same,
  with the token endpoint read from the authority's `/.well-known/openid-configuration`).

Tokens are cached for the run, per token endpoint, client, grant, user, scopes and
audiences, until `expires_in` says they expire (a little earlier); a protected endpoint
answering 401 to a cached token gets the request again with a new one. Every credential —
passwords, tokens, client secrets, the Basic credential, each token obtained — joins the
run's redactor before the request is sent, so none reaches a report, checkpoint or error.
Token and discovery failures are workflow errors: `authentication` (401) when the server
refuses the credentials, `communication` otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import httpx

from polyfleet.dsl.checks import Checker
from polyfleet.dsl.errors import AUTHENTICATION, COMMUNICATION, CONFIGURATION, WorkflowError
from polyfleet.dsl.expressions import is_expression
from polyfleet.dsl.runtime import Runtime

#: The schemes this runtime authenticates with.
SCHEMES = ("basic", "bearer", "digest", "oauth2", "oidc")
_UNSUPPORTED_SCHEMES = frozenset({"certificate"})
_CREDENTIALS = {"basic": ("username", "password"), "bearer": ("token",)}
_CREDENTIALS["digest"] = _CREDENTIALS["basic"]
_OAUTH_KEYS = frozenset(
    {"authority", "grant", "client", "request", "scopes", "audiences", "username", "password"}
)
_OAUTH_UNSUPPORTED = frozenset({"issuers", "subject", "actor"})
GRANTS = ("client_credentials", "password")
_CLIENT_METHODS = ("client_secret_post", "client_secret_basic", "none")
_CLIENT_METHODS_UNSUPPORTED = frozenset({"client_secret_jwt", "private_key_jwt"})
_FORM = "application/x-www-form-urlencoded"
_ENCODINGS = (_FORM, "application/json")
_ENDPOINT_KEYS = frozenset({"token", "revocation", "introspection"})
_DISCOVERY = "/.well-known/openid-configuration"
_DETAIL_LIMIT = 300
# A token is renewed this much before it expires (at most a tenth of its lifetime).
_EXPIRY_MARGIN = 10.0

#: Monotonic clock of token expiry (tests replace it).
clock: Callable[[], float] = time.monotonic


# -- validation ---------------------------------------------------------------------


def check_authentication(c: Checker, p: str, value: Any, variables: frozenset[str]) -> None:
    """An `authentication` of a call: `{use: NAME}` from `use.authentications`, or a policy."""
    if isinstance(value, Mapping) and "use" in value:
        c.keys(p, value, {"use"})
        name = value["use"]
        if c.string(f"{p}/use", name, "'use'") and name not in c.named("authentications"):
            c.add(
                f"{p}/use", f"unknown authentication '{name}' (not defined in use.authentications)"
            )
        return
    check_policy(c, p, value, variables)


def check_policy(c: Checker, p: str, value: Any, variables: frozenset[str]) -> None:
    """An authentication policy: exactly one scheme and its properties."""
    if isinstance(value, Mapping) and "use" in value:
        c.add(f"{p}/use", "a policy in use.authentications cannot refer to another one")
        return
    policy = c.members(
        p, value, "an authentication policy", SCHEMES, unsupported=_UNSUPPORTED_SCHEMES
    )
    if policy is None:
        return
    schemes = [s for s in policy if s in SCHEMES or s in _UNSUPPORTED_SCHEMES]
    if len(schemes) != 1:
        c.add(p, "an authentication policy has exactly one scheme: " + ", ".join(SCHEMES))
    for scheme in SCHEMES:
        if scheme in policy:
            _check_scheme(c, f"{p}/{scheme}", scheme, policy[scheme], variables)


def _check_scheme(c: Checker, p: str, scheme: str, value: Any, variables: frozenset[str]) -> None:
    block = c.mapping(p, value, f"'{scheme}'")
    if block is None:
        return
    if "use" in block:
        c.keys(p, block, {"use"})
        name = block["use"]
        secrets = c.use.get("secrets")
        declared = secrets if isinstance(secrets, list) else []
        if c.string(f"{p}/use", name, "'use'") and name not in declared:
            c.add(f"{p}/use", f"secret '{name}' is not declared in use.secrets")
        return
    if scheme in _CREDENTIALS:
        fields = _CREDENTIALS[scheme]
        c.keys(p, block, fields, required=fields)
        for key in fields:
            if key in block:
                c.string(f"{p}/{key}", block[key], f"'{key}'")
    else:
        _check_oauth(c, p, scheme, block)
    c.template(p, block, variables)


def _check_oauth(c: Checker, p: str, scheme: str, block: Mapping[str, Any]) -> None:
    allowed = _OAUTH_KEYS | {"endpoints"} if scheme == "oauth2" else _OAUTH_KEYS
    c.keys(p, block, allowed, required=("authority", "grant"), unsupported=_OAUTH_UNSUPPORTED)
    if "authority" in block:
        c.string(f"{p}/authority", block["authority"], "'authority'")
    grant = block.get("grant")
    if "grant" in block and not is_expression(grant) and grant not in GRANTS:
        c.add(f"{p}/grant", f"unsupported grant '{grant}': this runtime supports " + _or(GRANTS))
    for key in ("username", "password"):
        if key in block:
            c.string(f"{p}/{key}", block[key], f"'{key}'")
            if grant in GRANTS and grant != "password":
                c.add(f"{p}/{key}", f"'{key}' is only used by grant: password")
        elif grant == "password":
            c.add(f"{p}/{key}", f"missing required property '{key}' (grant: password)")
    for key in ("scopes", "audiences"):
        value = block.get(key)
        if key in block and not (
            is_expression(value)
            or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ):
            c.add(f"{p}/{key}", f"'{key}' must be a list of strings")
    if "client" in block:
        _check_client(c, f"{p}/client", block["client"])
    if "request" in block:
        request = c.members(f"{p}/request", block["request"], "'request'", {"encoding"})
        if request is not None and request.get("encoding", _FORM) not in _ENCODINGS:
            c.add(f"{p}/request/encoding", "'encoding' must be one of " + _or(_ENCODINGS))
    if "endpoints" in block:
        endpoints = c.members(f"{p}/endpoints", block["endpoints"], "'endpoints'", _ENDPOINT_KEYS)
        for key in endpoints or {}:
            if key in _ENDPOINT_KEYS:
                c.string(f"{p}/endpoints/{key}", endpoints[key], f"'{key}'")  # type: ignore[index]


def _check_client(c: Checker, p: str, value: Any) -> None:
    client = c.members(p, value, "'client'", {"id", "secret", "authentication"}, (), {"assertion"})
    if client is None:
        return
    for key in ("id", "secret"):
        if key in client:
            c.string(f"{p}/{key}", client[key], f"'{key}'")
    method = client.get("authentication", "client_secret_post")
    if method in _CLIENT_METHODS_UNSUPPORTED:
        c.add(f"{p}/authentication", f"client authentication '{method}' is not supported")
    elif method not in _CLIENT_METHODS:
        c.add(f"{p}/authentication", "'authentication' must be one of " + _or(_CLIENT_METHODS))
    if method != "none" and "id" not in client:
        c.add(f"{p}/id", f"missing required property 'id' (client authentication {method})")


def _or(values: tuple[str, ...]) -> str:
    return ", ".join(values[:-1]) + " or " + values[-1]


# -- running ------------------------------------------------------------------------


async def authenticate(
    rt: Runtime, authentication: Mapping[str, Any], data: Any, variables: Mapping[str, Any]
) -> httpx.Auth:
    """The ``httpx.Auth`` of a validated `authentication`, its credentials redacted from now on.

    Args:
        rt: the run (its secrets, client, redactor and token cache).
        authentication: the call's `authentication` (a policy or `{use: NAME}`).
        data: what `${ }` values are evaluated on (the task's input).
        variables: the `$` variables of the call.

    Raises:
        WorkflowError: a secret is not a policy, a value has the wrong type, or a token
            cannot be obtained.
    """
    policy = authentication
    if "use" in policy:
        policy = rt.doc["use"]["authentications"][policy["use"]]
    ((scheme, config),) = ((k, v) for k, v in policy.items() if k in SCHEMES)
    if "use" in config:
        props = _from_secret(rt, scheme, str(config["use"]))
    else:
        props = rt.template(config, data, variables)
    if scheme in ("basic", "digest"):
        username, password = _text(props, scheme, "username"), _text(props, scheme, "password")
        credential = base64.b64encode(f"{username}:{password}".encode()).decode()
        _redact(rt, password, credential)
        if scheme == "basic":
            return httpx.BasicAuth(username, password)
        return httpx.DigestAuth(username, password)
    if scheme == "bearer":
        token = _text(props, scheme, "token")
        _redact(rt, token)
        return _Bearer(token)
    return _OAuth(rt, _Grant.of(scheme, props))


def _from_secret(rt: Runtime, scheme: str, name: str) -> Mapping[str, Any]:
    """A scheme's properties held by secret ``name``: a JSON object (or, for bearer, a token)."""
    value = rt.secrets[name]
    try:
        props = json.loads(value)
    except ValueError:
        props = None
    if not isinstance(props, Mapping):
        if scheme == "bearer":
            return {"token": value}
        raise WorkflowError(
            CONFIGURATION,
            400,
            title="Invalid authentication secret",
            detail=f"secret '{name}' must hold a JSON object with the {scheme} properties",
        )
    # Its values are credentials too, not only the secret's whole text.
    _redact(rt, *(v for v in _strings(props)))
    return props


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _text(props: Any, scheme: str, key: str) -> str:
    value = props.get(key) if isinstance(props, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
        raise WorkflowError(
            CONFIGURATION,
            400,
            title="Invalid authentication",
            detail=f"{scheme}.{key} must be a non-empty string",
        )
    return str(value)


def _redact(rt: Runtime, *values: str) -> None:
    rt.redactor = rt.redactor.extended(values)


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = self._header
        yield request


@dataclass(frozen=True)
class _Grant:
    """One evaluated oauth2/oidc policy: what a token request says."""

    scheme: str
    authority: str
    token_path: str
    grant: str
    client_id: str
    client_secret: str
    client_method: str
    encoding: str
    scopes: tuple[str, ...]
    audiences: tuple[str, ...]
    username: str
    password: str

    @classmethod
    def of(cls, scheme: str, props: Any) -> _Grant:
        if not isinstance(props, Mapping):
            raise WorkflowError(
                CONFIGURATION, 400, "Invalid authentication", f"{scheme} must be an object"
            )
        grant = _text(props, scheme, "grant")
        if grant not in GRANTS:
            raise WorkflowError(
                CONFIGURATION,
                400,
                "Invalid authentication",
                f"{scheme}.grant '{grant}' is not supported (use {_or(GRANTS)})",
            )
        client, endpoints, request = (_object(props, scheme, k) for k in _OBJECTS)
        user = grant == "password"
        return cls(
            scheme=scheme,
            authority=_text(props, scheme, "authority"),
            token_path=str(endpoints.get("token") or "/oauth2/token"),
            grant=grant,
            client_id=str(client.get("id") or ""),
            client_secret=str(client.get("secret") or ""),
            client_method=str(client.get("authentication") or "client_secret_post"),
            encoding=str(request.get("encoding") or _FORM),
            scopes=_list(props, scheme, "scopes"),
            audiences=_list(props, scheme, "audiences"),
            username=_text(props, scheme, "username") if user else "",
            password=_text(props, scheme, "password") if user else "",
        )

    def request_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"grant_type": self.grant}
        if self.grant == "password":
            body["username"], body["password"] = self.username, self.password
        if self.scopes:
            body["scope"] = " ".join(self.scopes)
        if self.audiences:
            body["audience"] = " ".join(self.audiences)
        if self.client_method == "client_secret_post" or (
            self.client_method == "none" and self.client_id
        ):
            body["client_id"] = self.client_id
        if self.client_method == "client_secret_post" and self.client_secret:
            body["client_secret"] = self.client_secret
        return body

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.client_method == "client_secret_basic":
            # RFC 6749 2.3.1: both form-encoded before the Basic encoding.
            pair = f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        return headers


_OBJECTS = ("client", "endpoints", "request")


def _object(props: Mapping[str, Any], scheme: str, key: str) -> Mapping[str, Any]:
    value = props.get(key) or {}
    if not isinstance(value, Mapping):
        raise WorkflowError(
            CONFIGURATION, 400, "Invalid authentication", f"{scheme}.{key} must be an object"
        )
    return value


def _list(props: Mapping[str, Any], scheme: str, key: str) -> tuple[str, ...]:
    value = props.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WorkflowError(
            CONFIGURATION,
            400,
            "Invalid authentication",
            f"{scheme}.{key} must be a list of strings",
        )
    return tuple(value)


@dataclass
class _Token:
    value: str
    expires: float | None  # clock() time; None: valid for the whole run


@dataclass
class _Tokens:
    """A run's tokens and discovered token endpoints."""

    tokens: dict[tuple[Any, ...], _Token] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)
    locks: dict[tuple[Any, ...], asyncio.Lock] = field(default_factory=dict)


# One cache per run: it ends with the run's Runtime.
_RUNS: weakref.WeakKeyDictionary[Runtime, _Tokens] = weakref.WeakKeyDictionary()


class _OAuth(httpx.Auth):
    """Bearer authentication with a token from the run's cache or the token endpoint."""

    def __init__(self, rt: Runtime, grant: _Grant) -> None:
        self._rt = rt
        self._grant = grant
        _redact(rt, grant.client_secret, grant.password)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token, fresh = await _token(self._rt, self._grant)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401 and not fresh:
            # The server no longer takes the cached token (revoked, or expired early).
            await response.aread()
            token, _ = await _token(self._rt, self._grant, refused=token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request


async def _token(rt: Runtime, grant: _Grant, refused: str | None = None) -> tuple[str, bool]:
    """A valid token for ``grant`` and whether it was just obtained."""
    run = _RUNS.setdefault(rt, _Tokens())
    url = await _token_url(rt, run, grant)
    key = (url, grant.client_id, grant.grant, grant.username, grant.scopes, grant.audiences)
    async with run.locks.setdefault(key, asyncio.Lock()):
        cached = run.tokens.get(key)
        if (
            cached is not None
            and cached.value != refused
            and (cached.expires is None or clock() < cached.expires)
        ):
            return cached.value, False
        token = await _request_token(rt, grant, url)
        run.tokens[key] = token
        return token.value, True


async def _token_url(rt: Runtime, run: _Tokens, grant: _Grant) -> str:
    if grant.scheme == "oauth2":
        if "://" in grant.token_path:
            return grant.token_path
        return grant.authority.rstrip("/") + "/" + grant.token_path.lstrip("/")
    # One discovery per authority, also when fork branches call at the same time.
    async with run.locks.setdefault(("discovery", grant.authority), asyncio.Lock()):
        found = run.endpoints.get(grant.authority)
        if found is None:
            found = await _discover(rt, grant.authority)
            run.endpoints[grant.authority] = found
    return found


async def _discover(rt: Runtime, authority: str) -> str:
    """The token endpoint of an OpenID provider (OpenID Connect Discovery 1.0)."""
    url = authority if authority.endswith(_DISCOVERY) else authority.rstrip("/") + _DISCOVERY
    title = "OpenID Connect discovery failed"
    try:
        response = await rt.http.get(url, headers={"Accept": "application/json"})
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise WorkflowError(
            COMMUNICATION, 500, title, f"GET {url}: {type(exc).__name__}: {exc}"
        ) from None
    if not 200 <= response.status_code < 300:
        raise WorkflowError(
            COMMUNICATION,
            response.status_code,
            title,
            f"GET {url} answered {response.status_code}: {response.text[:_DETAIL_LIMIT]}",
        )
    try:
        endpoint = response.json().get("token_endpoint")
    except (ValueError, AttributeError):
        endpoint = None
    if not isinstance(endpoint, str) or not endpoint:
        raise WorkflowError(
            COMMUNICATION, 502, title, f"{url} has no token_endpoint in a JSON object"
        )
    return endpoint


async def _request_token(rt: Runtime, grant: _Grant, url: str) -> _Token:
    body = grant.request_body()
    content: dict[str, Any] = {"json": body} if grant.encoding != _FORM else {"data": body}
    try:
        response = await rt.http.post(url, headers=grant.headers(), **content)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise WorkflowError(
            COMMUNICATION,
            500,
            "OAuth2 token request failed",
            f"POST {url}: {type(exc).__name__}: {exc}",
        ) from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not 200 <= response.status_code < 300:
        reason = response.text[:_DETAIL_LIMIT]
        if isinstance(answer, Mapping) and "error" in answer:
            reason = " ".join(str(answer.get(k, "")) for k in ("error", "error_description"))
        refused = response.status_code in (400, 401, 403)
        raise WorkflowError(
            AUTHENTICATION if refused else COMMUNICATION,
            401 if refused else response.status_code,
            "OAuth2 token request refused" if refused else "OAuth2 token request failed",
            f"POST {url} answered {response.status_code}: {reason.strip()}",
        )
    token = answer.get("access_token") if isinstance(answer, Mapping) else None
    if not isinstance(token, str) or not token:
        raise WorkflowError(
            AUTHENTICATION,
            401,
            "OAuth2 token request failed",
            f"POST {url} answered without an access_token",
        )
    assert isinstance(answer, Mapping)
    _redact(rt, *(v for k, v in answer.items() if k.endswith("token") and isinstance(v, str)))
    return _Token(token, _expiry(answer.get("expires_in")))


def _expiry(lifetime: Any) -> float | None:
    """When a token of ``lifetime`` seconds (a number, or one as a string) is renewed."""
    try:
        seconds = float(lifetime) if not isinstance(lifetime, bool) else None
    except (TypeError, ValueError):
        seconds = None
    if seconds is None:
        return None  # no lifetime given: the token serves the whole run
    return clock() + seconds - min(_EXPIRY_MARGIN, max(seconds, 0) / 10)
