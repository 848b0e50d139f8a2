"""Authentication of calls: every scheme, `use.authentications`, secrets, token caching."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from polyfleet.dsl import validate_document
from polyfleet.dsl.errors import AUTHENTICATION, COMMUNICATION, CONFIGURATION, WorkflowError
from polyfleet.dsl.tasks import authentication
from tests.unit.dsl.support import HEADER, Hooks, doc, run

BASE = "http://api.test"
IDP = "http://idp.test/realms/test"
CLIENT_SECRET = "client-secret-0123456789"
USER_PASSWORD = "user-password-9876"
DIGEST_PASSWORD = "digest-password-5555"
REALM = "polyfleet"
NONCE = "dcd98b7102dd2f0e8b11d0f600bfb0c093"


class FakeServices:
    """An OAuth2 / OIDC provider and a protected API, as one httpx mock transport."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.token_requests: list[dict[str, Any]] = []
        self.lifetime: int | str | None = 3600
        self.issued = 0
        self.revoked: set[str] = set()
        self.refuse = False

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle_async)

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        # Let the other tasks run first, as a real round trip would (concurrent branches).
        loop = asyncio.get_running_loop()
        turn = loop.create_future()
        loop.call_soon(turn.set_result, None)
        await turn
        return self.handle(request)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls[path] += 1
        if path == "/realms/test/.well-known/openid-configuration":
            return httpx.Response(
                200, json={"issuer": IDP, "token_endpoint": f"{IDP}/protocol/token"}
            )
        if path in ("/realms/test/oauth2/token", "/realms/test/protocol/token"):
            return self._token(request)
        if path == "/digest":
            return self._digest(request)
        if path == "/echo":
            # The protected API: any credential is fine except a revoked token.
            header = request.headers.get("authorization", "")
            if header.removeprefix("Bearer ") in self.revoked:
                return httpx.Response(401, json={"error": "revoked"})
            return httpx.Response(200, json={"authorization": header})
        return httpx.Response(404)

    def _token(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("content-type") == "application/json":
            form: dict[str, Any] = json.loads(request.content)
        else:
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        basic = request.headers.get("authorization", "")
        if basic.startswith("Basic "):
            form["basic"] = base64.b64decode(basic[6:]).decode()
        self.token_requests.append(form)
        secret = form.get("client_secret") or form.get("basic", ":").split(":", 1)[1]
        if self.refuse or secret != CLIENT_SECRET:
            return httpx.Response(401, json={"error": "invalid_client", "error_description": "no"})
        self.issued += 1
        answer: dict[str, Any] = {
            "access_token": f"token-{self.issued}-abcdef",
            "token_type": "Bearer",
        }
        if self.lifetime is not None:
            answer["expires_in"] = self.lifetime
        return httpx.Response(200, json=answer)

    def _digest(self, request: httpx.Request) -> httpx.Response:
        header = request.headers.get("authorization", "")
        if not header.startswith("Digest "):
            challenge = f'Digest realm="{REALM}", nonce="{NONCE}", qop="auth", algorithm=MD5'
            return httpx.Response(401, headers={"www-authenticate": challenge})
        fields = dict(
            (k.strip(), v.strip().strip('"'))
            for k, v in (part.split("=", 1) for part in header[7:].split(","))
        )

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{fields['username']}:{REALM}:{DIGEST_PASSWORD}")
        ha2 = md5(f"{request.method}:{fields['uri']}")
        expected = md5(f"{ha1}:{NONCE}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
        if fields["response"] != expected:
            return httpx.Response(401)
        return httpx.Response(200, json={"user": fields["username"]})


@pytest.fixture
def services() -> FakeServices:
    return FakeServices()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The token-expiry clock, moved by the test."""
    now = [1000.0]
    monkeypatch.setattr(authentication, "clock", lambda: now[0])
    yield now


def call(name: str, auth: str, path: str = "/echo") -> str:
    """A `call: http` task (YAML) with ``auth`` as its endpoint's authentication."""
    return (
        f"  - {name}:\n      call: http\n      with:\n        method: get\n"
        f"        endpoint: {{uri: '{BASE}{path}', authentication: {auth}}}\n"
    )


async def execute(
    services: FakeServices,
    body: str,
    data: Any = None,
    *,
    hooks: Hooks | None = None,
    **options: Any,
) -> Any:
    async with httpx.AsyncClient(transport=services.transport()) as client:
        return await run(doc(body), data, hooks=hooks, http=client, **options)


async def test_basic_and_bearer_inline_and_by_name(services: FakeServices) -> None:
    body = (
        "use:\n  authentications:\n    api: {bearer: {token: '${ $workflow.input.token }'}}\n"
        "do:\n"
        + call("basic", "{basic: {username: ada, password: pw-1234}}")
        + call("bearer", "{use: api}")
    )
    hooks = Hooks()
    await execute(services, body, {"token": "input-token-5678"}, hooks=hooks)
    expected = "Basic " + base64.b64encode(b"ada:pw-1234").decode()
    basic = hooks.last("/do/0/basic").output
    assert basic == {"authorization": "Basic [REDACTED]"}
    assert services.calls["/echo"] == 2
    # The input's token is used, and from then on redacted like every credential.
    assert hooks.last("/do/1/bearer").output == {"authorization": "Bearer [REDACTED]"}
    assert expected.split()[1] not in hooks.dump()


async def test_digest_answers_the_servers_challenge(services: FakeServices) -> None:
    hooks = Hooks()
    body = "do:\n" + call(
        "d", f"{{digest: {{username: ada, password: {DIGEST_PASSWORD}}}}}", "/digest"
    )
    assert await execute(services, body, hooks=hooks) == {"user": "ada"}
    assert services.calls["/digest"] == 2  # the challenge, then the answer
    assert DIGEST_PASSWORD not in hooks.dump()


async def test_wrong_digest_password_is_a_communication_error(services: FakeServices) -> None:
    body = "do:\n" + call("d", "{digest: {username: ada, password: wrong-one}}", "/digest")
    with pytest.raises(WorkflowError) as caught:
        await execute(services, body)
    assert (caught.value.type, caught.value.status) == (COMMUNICATION, 401)


async def test_policies_from_secrets_are_used_and_redacted(services: FakeServices) -> None:
    secrets = {
        "creds": json.dumps({"username": "ada", "password": USER_PASSWORD}),
        "apiToken": "plain-bearer-token-1234",
        "digestCreds": json.dumps({"username": "bob", "password": DIGEST_PASSWORD}),
    }
    body = (
        "use:\n  secrets: [creds, apiToken, digestCreds]\n"
        "  authentications:\n    fromSecret: {basic: {use: creds}}\n"
        "do:\n"
        + call("basic", "{use: fromSecret}")
        + call("bearer", "{bearer: {token: '${ $secrets.apiToken }'}}")
        + call("digest", "{digest: {use: digestCreds}}", "/digest")
    )
    hooks = Hooks()
    await execute(services, body, hooks=hooks, secrets=secrets)
    assert hooks.last("/do/2/digest").output == {"user": "bob"}
    dumped = hooks.dump()
    for value in (USER_PASSWORD, "plain-bearer-token-1234", DIGEST_PASSWORD):
        assert value not in dumped
    assert hooks.last("/do/0/basic").output == {"authorization": "Basic [REDACTED]"}


async def test_a_secret_that_is_not_a_policy_is_a_configuration_error(
    services: FakeServices,
) -> None:
    body = "use: {secrets: [creds]}\ndo:\n" + call("c", "{basic: {use: creds}}")
    with pytest.raises(WorkflowError) as caught:
        await execute(services, body, secrets={"creds": "not-json-at-all"})
    assert (caught.value.type, caught.value.status) == (CONFIGURATION, 400)
    assert "secret 'creds'" in caught.value.detail
    assert "not-json-at-all" not in str(caught.value)


OAUTH2 = (
    "{oauth2: {authority: '" + IDP + "', grant: client_credentials, "
    "client: {id: polyfleet, secret: '${ $secrets.clientSecret }'}, "
    "scopes: [read, write], audiences: [api]}}"
)


async def test_oauth2_client_credentials_token_is_cached_until_it_expires(
    services: FakeServices, clock: list[float]
) -> None:
    body = (
        "use: {secrets: [clientSecret]}\ndo:\n"
        + call("first", OAUTH2)
        + call("second", OAUTH2)
        + "  - later: {wait: {milliseconds: 1}}\n"
    )
    hooks = Hooks()
    secrets = {"clientSecret": CLIENT_SECRET}
    await execute(services, body, hooks=hooks, secrets=secrets)
    assert services.token_requests == [
        {
            "grant_type": "client_credentials",
            "client_id": "polyfleet",
            "client_secret": CLIENT_SECRET,
            "scope": "read write",
            "audience": "api",
        }
    ]
    assert hooks.last("/do/1/second").output == {"authorization": "Bearer [REDACTED]"}
    assert "token-1-abcdef" not in hooks.dump()
    assert CLIENT_SECRET not in hooks.dump()
    # A new run gets its own token; past its expiry (less a margin) the token is renewed.
    services.lifetime = 60
    body = "use: {secrets: [clientSecret]}\ndo:\n" + call("a", OAUTH2) + call("b", OAUTH2)

    async def advance(task: Any) -> None:
        if task.id == "/do/0/a" and task.phase == "COMPLETED":
            clock[0] += 55

    hooks = Hooks()
    original = hooks.report

    async def report(task: Any) -> None:
        await advance(task)
        await original(task)

    hooks.report = report  # type: ignore[method-assign]
    await execute(services, body, hooks=hooks, secrets=secrets)
    assert len(services.token_requests) == 3
    assert "token-3-abcdef" not in hooks.dump()


async def test_a_cached_token_refused_with_401_is_renewed_once(
    services: FakeServices, clock: list[float]
) -> None:
    body = (
        "use: {secrets: [clientSecret]}\ndo:\n"
        + call("a", OAUTH2)
        + "  - revoke: {set: {}}\n"
        + call("b", OAUTH2)
    )
    hooks = Hooks()
    original = hooks.report

    async def report(task: Any) -> None:
        if task.id == "/do/1/revoke" and task.phase == "RUNNING":
            services.revoked.add("token-1-abcdef")
        await original(task)

    hooks.report = report  # type: ignore[method-assign]
    await execute(services, body, hooks=hooks, secrets={"clientSecret": CLIENT_SECRET})
    assert services.issued == 2
    assert services.calls["/echo"] == 3  # a, b refused, b again with the new token


async def test_oauth2_password_grant_with_basic_client_auth_and_json(
    services: FakeServices,
) -> None:
    auth = (
        "{oauth2: {authority: '" + IDP + "/', endpoints: {token: oauth2/token}, "
        "grant: password, username: ada, password: '${ $secrets.pw }', "
        "request: {encoding: application/json}, "
        "client: {id: 'pf client', secret: '" + CLIENT_SECRET + "', "
        "authentication: client_secret_basic}}}"
    )
    body = "use: {secrets: [pw]}\ndo:\n" + call("c", auth)
    hooks = Hooks()
    await execute(services, body, hooks=hooks, secrets={"pw": USER_PASSWORD})
    assert services.token_requests == [
        {
            "grant_type": "password",
            "username": "ada",
            "password": USER_PASSWORD,
            "basic": f"pf+client:{CLIENT_SECRET}",
        }
    ]
    assert USER_PASSWORD not in hooks.dump() and CLIENT_SECRET not in hooks.dump()


async def test_oidc_discovers_the_token_endpoint_once(services: FakeServices) -> None:
    auth = (
        "{oidc: {authority: '" + IDP + "', grant: client_credentials, "
        "client: {id: polyfleet, secret: '" + CLIENT_SECRET + "'}}}"
    )
    body = "do:\n" + call("a", auth) + call("b", auth)
    await execute(services, body)
    assert services.calls["/realms/test/.well-known/openid-configuration"] == 1
    assert services.calls["/realms/test/protocol/token"] == 1
    assert services.calls["/echo"] == 2


async def test_a_refused_token_request_is_an_authentication_error(
    services: FakeServices,
) -> None:
    services.refuse = True
    body = "use: {secrets: [clientSecret]}\ndo:\n" + call("c", OAUTH2)
    hooks = Hooks()
    with pytest.raises(WorkflowError) as caught:
        await execute(services, body, hooks=hooks, secrets={"clientSecret": CLIENT_SECRET})
    error = caught.value
    assert (error.type, error.status, error.instance) == (AUTHENTICATION, 401, "/do/0/c")
    assert "invalid_client" in error.detail
    assert hooks.last("/do/0/c").phase == "FAILED"
    assert CLIENT_SECRET not in hooks.dump()


async def test_an_unreachable_token_endpoint_is_a_communication_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    body = "do:\n" + call("c", OAUTH2.replace("${ $secrets.clientSecret }", "abcd-secret"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(WorkflowError) as caught:
            await run(doc(body), http=client)
    assert (caught.value.type, caught.value.status) == (COMMUNICATION, 500)
    assert "ConnectError" in caught.value.detail


# -- validation ---------------------------------------------------------------------


def problems(body: str) -> dict[str, str]:
    return {p.pointer: p.message for p in validate_document(doc(body))}


AUTH = "/do/0/c/with/endpoint/authentication"


@pytest.mark.parametrize(
    ("auth", "pointer", "message"),
    [
        ("{use: nope}", f"{AUTH}/use", "unknown authentication 'nope'"),
        ("{basic: {use: undeclared}}", f"{AUTH}/basic/use", "not declared in use.secrets"),
        ("{basic: {username: a}}", f"{AUTH}/basic/password", "missing required"),
        ("{bearer: {token: t, extra: 1}}", f"{AUTH}/bearer/extra", "unknown property"),
        ("{basic: {username: a, password: b}, bearer: {token: t}}", AUTH, "exactly one scheme"),
        ("{certificate: {}}", f"{AUTH}/certificate", "not supported"),
        ("{oauth2: {grant: client_credentials}}", f"{AUTH}/oauth2/authority", "missing"),
        (
            "{oauth2: {authority: 'http://x', grant: authorization_code}}",
            f"{AUTH}/oauth2/grant",
            "unsupported grant 'authorization_code'",
        ),
        (
            "{oauth2: {authority: 'http://x', grant: password, username: a}}",
            f"{AUTH}/oauth2/password",
            "missing required property 'password'",
        ),
        (
            "{oauth2: {authority: 'http://x', grant: client_credentials, password: p}}",
            f"{AUTH}/oauth2/password",
            "only used by grant: password",
        ),
        (
            "{oidc: {authority: 'http://x', grant: client_credentials, endpoints: {}}}",
            f"{AUTH}/oidc/endpoints",
            "unknown property",
        ),
        (
            "{oidc: {authority: 'http://x', grant: client_credentials, issuers: [a]}}",
            f"{AUTH}/oidc/issuers",
            "not supported",
        ),
        (
            "{oauth2: {authority: 'http://x', grant: client_credentials, "
            "client: {id: c, authentication: private_key_jwt}}}",
            f"{AUTH}/oauth2/client/authentication",
            "'private_key_jwt' is not supported",
        ),
        (
            "{oauth2: {authority: 'http://x', grant: client_credentials, client: {secret: s}}}",
            f"{AUTH}/oauth2/client/id",
            "missing required property 'id'",
        ),
        (
            "{oauth2: {authority: 'http://x', grant: client_credentials, scopes: read}}",
            f"{AUTH}/oauth2/scopes",
            "list of strings",
        ),
        (
            "{oauth2: {authority: 'http://x', grant: client_credentials, "
            "request: {encoding: text/plain}}}",
            f"{AUTH}/oauth2/request/encoding",
            "must be one of",
        ),
        ("{bearer: {token: '${ .a. }'}}", f"{AUTH}/bearer/token", "invalid jq expression"),
    ],
)
def test_invalid_policies_are_problems_at_their_pointer(
    auth: str, pointer: str, message: str
) -> None:
    found = problems("do:\n" + call("c", auth))
    assert pointer in found, found
    assert message in found[pointer]


def test_use_authentications_is_checked_and_cannot_refer_to_another() -> None:
    found = problems(
        "use:\n  authentications:\n    a: {use: b}\n    b: {digest: {username: u}}\n"
        "do:\n  - s: {set: {}}\n"
    )
    assert "cannot refer to another" in found["/use/authentications/a/use"]
    assert "missing required" in found["/use/authentications/b/digest/password"]


SPEC_EXAMPLES = [
    "do:\n" + call("g", "{bearer: {token: '${ .token }'}}"),
    "use: {secrets: [mySecret]}\ndo:\n" + call("g", "{oauth2: {use: mySecret}}"),
    "use: {secrets: [mySecret]}\ndo:\n" + call("g", "{oidc: {use: mySecret}}"),
    "do:\n"
    + call(
        "g",
        "{oauth2: {authority: 'http://keycloak/realms/fake-authority', "
        "endpoints: {token: /auth/token, introspection: /auth/introspect}, "
        "grant: client_credentials, client: {id: workflow-runtime-id, "
        "secret: workflow-runtime-secret}}}",
    ),
    "do:\n"
    + call(
        "g",
        "{oidc: {authority: 'http://keycloak/realms/fake-authority', "
        "grant: client_credentials, client: {id: workflow-runtime-id, "
        "secret: workflow-runtime-secret}}}",
    ),
    "use:\n  authentications:\n    petStoreAuth: {bearer: {token: '${ .token }'}}\n"
    "do:\n" + call("g", "{use: petStoreAuth}"),
]


@pytest.mark.parametrize("body", SPEC_EXAMPLES)
def test_the_specifications_authentication_examples_are_accepted(body: str) -> None:
    assert validate_document(doc(body)) == [], HEADER + body


async def test_oauth2_policy_from_a_secret(services: FakeServices) -> None:
    policy = {
        "authority": IDP,
        "grant": "client_credentials",
        "client": {"id": "polyfleet", "secret": CLIENT_SECRET},
    }
    body = "use: {secrets: [mySecret]}\ndo:\n" + call("g", "{oauth2: {use: mySecret}}")
    hooks = Hooks()
    await execute(services, body, hooks=hooks, secrets={"mySecret": json.dumps(policy)})
    assert services.issued == 1
    assert CLIENT_SECRET not in hooks.dump()
    assert "token-1-abcdef" not in hooks.dump()


async def test_concurrent_branches_share_one_discovery_and_one_token(
    services: FakeServices,
) -> None:
    oidc = {
        "authority": f"{IDP}/.well-known/openid-configuration",
        "grant": "client_credentials",
        "client": {"id": "polyfleet", "secret": CLIENT_SECRET},
    }
    request = {
        "call": "http",
        "with": {
            "method": "get",
            "endpoint": {"uri": f"{BASE}/echo", "authentication": {"oidc": oidc}},
        },
    }
    branches = [{f"b{i}": {"do": [{"c": request}]}} for i in range(3)]
    await execute(services, "do: " + json.dumps([{"par": {"fork": {"branches": branches}}}]))
    assert services.calls["/realms/test/.well-known/openid-configuration"] == 1
    assert services.calls["/realms/test/protocol/token"] == 1
    assert services.calls["/echo"] == 3


@pytest.mark.parametrize(("lifetime", "tokens"), [("60", 2), (None, 1)])
async def test_expires_in_as_a_string_or_absent(
    services: FakeServices, clock: list[float], lifetime: Any, tokens: int
) -> None:
    services.lifetime = lifetime
    body = "use: {secrets: [clientSecret]}\ndo:\n" + call("a", OAUTH2) + call("b", OAUTH2)
    hooks = Hooks()
    original = hooks.report

    async def report(task: Any) -> None:
        if task.id == "/do/0/a" and task.phase == "COMPLETED":
            clock[0] += 3600 * 24
        await original(task)

    hooks.report = report  # type: ignore[method-assign]
    await execute(services, body, hooks=hooks, secrets={"clientSecret": CLIENT_SECRET})
    assert services.issued == tokens
