"""Authentication of `call: http` through a real fleet, against real servers on 127.0.0.1.

The test's own server is an OAuth2 token endpoint (client credentials and password grants,
counting requests to prove the cache), an OpenID provider's discovery document, and
endpoints protected by digest, basic and bearer credentials. The runner reads the secrets
from its secrets file; no secret value nor any token it obtained may reach the execution's
status, its events, its checkpoint, its Temporal history or the logs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from google.protobuf import json_format
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client

from polyfleet.config import RunnerSettings
from polyfleet.v1 import common_pb2
from tests.conftest import Fleet, start_fleet, stopping
from tests.http_server import ThreadedServer
from tests.integration.workflows.conftest import apply_workflow, finish, start, tasks

CLIENT_ID = "polyfleet"
SHORT_LIVED = "short-lived"  # a client whose tokens expire at once
CLIENT_SECRET = "client-secret-SECRET-4242"
USER_PASSWORD = "user-password-SECRET-7777"
DIGEST_PASSWORD = "digest-password-SECRET-1111"
BASIC_PASSWORD = "basic-password-SECRET-2222"
API_TOKEN = "api-token-SECRET-3333"
REALM = "polyfleet-test"
AUTHENTICATION = "https://serverlessworkflow.io/spec/1.0.0/errors/authentication"


class AuthServer(ThreadedServer):
    """A real HTTP server: an OAuth2/OIDC provider and protected endpoints."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.token_requests: Counter[str] = Counter()  # by "<path> <grant> <client>"
        self.discoveries = 0
        self.issued: list[str] = []
        self.nonce = secrets.token_hex(8)
        super().__init__(
            [
                Route("/oauth2/token", self._token, methods=["POST"]),
                Route("/oidc/token", self._token, methods=["POST"]),
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/protected", self._protected),
                Route("/digest", self._digest),
                Route("/basic", self._basic),
            ]
        )

    async def _token(self, request: Request) -> Response:
        form = await request.form()
        grant, client = str(form.get("grant_type")), str(form.get("client_id"))
        with self._lock:
            self.token_requests[f"{request.url.path} {grant} {client}"] += 1
        if form.get("client_secret") != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if grant == "password" and (
            form.get("username"),
            form.get("password"),
        ) != ("ada", USER_PASSWORD):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if grant not in ("client_credentials", "password"):
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        token = f"issued-{secrets.token_hex(12)}"
        with self._lock:
            self.issued.append(token)
        lifetime = 0 if client == SHORT_LIVED else 3600
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": lifetime})

    async def _discovery(self, request: Request) -> Response:
        with self._lock:
            self.discoveries += 1
        return JSONResponse({"issuer": self.url, "token_endpoint": f"{self.url}/oidc/token"})

    async def _protected(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ")
        if token not in self.issued and token != API_TOKEN:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        # Echoed back, so the test sees a credential flow into task data and be redacted.
        return JSONResponse({"ok": True, "authorization": header})

    async def _basic(self, request: Request) -> Response:
        expected = base64.b64encode(f"robert:{BASIC_PASSWORD}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return Response(status_code=401)
        return JSONResponse({"ok": True, "user": "robert"})

    async def _digest(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        if not header.startswith("Digest "):
            challenge = f'Digest realm="{REALM}", nonce="{self.nonce}", qop="auth", algorithm=MD5'
            return Response(status_code=401, headers={"www-authenticate": challenge})
        fields = {
            k.strip(): v.strip().strip('"')
            for k, v in (part.split("=", 1) for part in header[7:].split(","))
        }

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{fields['username']}:{REALM}:{DIGEST_PASSWORD}")
        ha2 = md5(f"{request.method}:{fields['uri']}")
        expected = md5(f"{ha1}:{self.nonce}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
        if fields.get("response") != expected:
            return Response(status_code=401)
        return JSONResponse({"ok": True, "user": fields["username"]})


@pytest.fixture
def auth_server() -> Iterator[AuthServer]:
    server = AuthServer()
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture
async def secret_fleet(temporal_client: Client, tmp_path: Path) -> AsyncIterator[Fleet]:
    """A fleet whose runner reads the test's secrets from its secrets file only."""
    path = tmp_path / "secrets.env"
    digest = json.dumps({"username": "carol", "password": DIGEST_PASSWORD})
    basic = json.dumps({"username": "robert", "password": BASIC_PASSWORD})
    path.write_text(
        f"clientSecret={CLIENT_SECRET}\nuserPassword={USER_PASSWORD}\n"
        f"digestCreds='{digest}'\nbasicCreds='{basic}'\napiToken={API_TOKEN}\n"
    )
    settings = RunnerSettings(
        heartbeat_interval=timedelta(seconds=1),
        secrets_file=path,
        secrets_from_environment=False,
    )
    data_dir = tmp_path / "data"
    async with stopping(await start_fleet(temporal_client, data_dir, runner=settings)) as fleet:
        yield fleet


def _call(name: str, uri: str, auth: str) -> str:
    return (
        f"  - {name}:\n      call: http\n      with:\n        method: get\n"
        f"        endpoint:\n          uri: {uri}\n          authentication: {auth}\n"
    )


def _oauth(scheme: str, url: str, client: str, extra: str = "") -> str:
    return (
        f"{{{scheme}: {{authority: '{url}', grant: client_credentials, "
        f"client: {{id: {client}, secret: '${{ $secrets.clientSecret }}'}}, "
        f"scopes: [read]{extra}}}}}"
    )


async def test_every_scheme_authenticates_and_no_credential_leaks(
    secret_fleet: Fleet, auth_server: AuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = auth_server.url
    password_grant = (
        f"{{oauth2: {{authority: '{url}', grant: password, username: ada, "
        "password: '${ $secrets.userPassword }', "
        f"client: {{id: {CLIENT_ID}, secret: '${{ $secrets.clientSecret }}'}}}}}}"
    )
    body = (
        "use:\n"
        "  secrets: [clientSecret, userPassword, digestCreds, basicCreds, apiToken]\n"
        "  authentications:\n"
        f"    idp: {_oauth('oauth2', url, CLIENT_ID)}\n"
        "    basicFromSecret: {basic: {use: basicCreds}}\n"
        "    apiBearer: {bearer: {token: '${ $secrets.apiToken }'}}\n"
        "do:\n"
        + _call("cc1", f"{url}/protected", "{use: idp}")
        + _call("cc2", f"{url}/protected", "{use: idp}")
        + _call("password", f"{url}/protected", password_grant)
        + _call("oidc", f"{url}/protected", _oauth("oidc", url, CLIENT_ID))
        + _call("oidc2", f"{url}/protected", _oauth("oidc", url, CLIENT_ID))
        + _call("short1", f"{url}/protected", _oauth("oauth2", url, SHORT_LIVED))
        + _call("short2", f"{url}/protected", _oauth("oauth2", url, SHORT_LIVED))
        + _call("digest", f"{url}/digest", "{digest: {use: digestCreds}}")
        + _call("basic", f"{url}/basic", "{use: basicFromSecret}")
        + _call("bearer", f"{url}/protected", "{use: apiBearer}")
    )
    await apply_workflow(secret_fleet, "auth-all", body)
    created = await start(secret_fleet, "auth-all")
    done = await finish(secret_fleet, created.id)
    assert done.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED, done.status.error

    # One token per (endpoint, client, grant): reused within the run, renewed once expired.
    assert auth_server.token_requests == {
        f"/oauth2/token client_credentials {CLIENT_ID}": 1,
        f"/oauth2/token password {CLIENT_ID}": 1,
        f"/oidc/token client_credentials {CLIENT_ID}": 1,
        f"/oauth2/token client_credentials {SHORT_LIVED}": 2,
    }
    assert auth_server.discoveries == 1
    statuses = tasks(done)
    ids = [task.id for task in done.status.tasks]
    assert all(statuses[i].phase == common_pb2.TASK_PHASE_COMPLETED for i in ids)
    echoed = json_format.MessageToDict(statuses["/do/0/cc1"].output)
    assert echoed == {"ok": True, "authorization": "Bearer [REDACTED]"}
    # The servers saw the users of the secrets; every value of a secret is hidden, names too.
    for task in ("/do/7/digest", "/do/8/basic"):
        assert json_format.MessageToDict(statuses[task].output) == {
            "ok": True,
            "user": "[REDACTED]",
        }

    # Nothing secret anywhere: status, events, checkpoint, Temporal history, logs.
    db = secret_fleet.orchestrator.db
    assert db is not None
    events = await db.workflow_executions.events(created.id)
    checkpoint = await db.checkpoints.get(created.id)
    assert checkpoint is not None
    history = await secret_fleet.temporal.get_workflow_handle(done.workflow_id).fetch_history()
    places = {
        "status": str(done),
        "events": "\n".join(str(event) for event in events),
        "checkpoint": checkpoint.data.decode(),
        "history": history.to_json(),
        "logs": caplog.text,
    }
    assert "Bearer [REDACTED]" in places["checkpoint"]
    values = [CLIENT_SECRET, USER_PASSWORD, DIGEST_PASSWORD, BASIC_PASSWORD, API_TOKEN]
    values += auth_server.issued
    assert len(auth_server.issued) == 5
    for where, text in places.items():
        for value in values:
            assert value not in text, f"{value} in the {where}"


async def test_a_refused_token_request_fails_the_call_with_an_authentication_error(
    secret_fleet: Fleet, auth_server: AuthServer
) -> None:
    url = auth_server.url
    wrong = (
        f"{{oauth2: {{authority: '{url}', grant: password, username: ada, password: nope-nope, "
        f"client: {{id: {CLIENT_ID}, secret: '${{ $secrets.clientSecret }}'}}}}}}"
    )
    body = (
        "use: {secrets: [clientSecret]}\n"
        "do:\n"
        "  - guarded:\n"
        "      try:\n" + _indent(_call("refused", f"{url}/protected", wrong), 8) + "      catch:\n"
        f"        errors: {{with: {{type: {AUTHENTICATION}}}}}\n"
        "        as: problem\n"
        "        do:\n"
        "          - seen: {set: {caught: '${ $problem.status }'}}\n"
        + _call("unguarded", f"{url}/protected", wrong)
    )
    await apply_workflow(secret_fleet, "auth-refused", body)
    done = await finish(secret_fleet, (await start(secret_fleet, "auth-refused")).id)
    assert done.status.phase == common_pb2.EXECUTION_PHASE_FAILED
    error = done.status.error
    assert error.type == "WorkflowError"
    assert (error.status, error.instance) == (401, "/do/1/unguarded")
    assert "invalid_grant" in error.detail
    caught = tasks(done)["/do/0/guarded/catch/do/0/seen"]
    assert json_format.MessageToDict(caught.output) == {"caught": 401}
    refused = tasks(done)["/do/1/unguarded"]
    assert refused.error.type == AUTHENTICATION
    assert CLIENT_SECRET not in str(done)


def _indent(text: str, spaces: int) -> str:
    """``text`` (task-list YAML at two spaces) indented to ``spaces``."""
    pad = " " * (spaces - 2)
    return "".join(pad + line for line in text.splitlines(keepends=True))
