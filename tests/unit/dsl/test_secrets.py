"""`$secrets`: usable in expressions, never in reports, checkpoints or raised errors."""

from __future__ import annotations

import httpx
import pytest

from polyfleet.dsl import CONFIGURATION, WorkflowError
from tests.unit.dsl.support import Hooks, Server, doc, run

SECRET = "s3cr3t-token-value"
OTHER = "undeclared-secret-value"


async def test_secrets_are_usable_but_never_reported_or_checkpointed(
    server: Server, http: httpx.AsyncClient
) -> None:
    hooks = Hooks()
    document = doc(
        "use: {secrets: [apiToken]}\n"
        "do:\n"
        "  - keyed:\n"
        "      input: {from: '${ {token: $secrets.apiToken, other: $secrets.notDeclared} }'}\n"
        "      set: {len: '${ .token | length }', other: '${ .other }'}\n"
        "  - callApi:\n"
        "      call: http\n"
        "      with:\n"
        "        method: post\n"
        f"        endpoint: {{uri: '{server.url}/echo', "
        "authentication: {bearer: {token: '${ $secrets.apiToken }'}}}\n"
        "        headers: {X-Key: '${ $secrets.apiToken }'}\n"
        "        body: {echoed: '${ $secrets.apiToken }'}\n"
        "        output: response\n"
        "  - keep: {set: {auth: '${ .content.headers.authorization }', "
        "request: '${ .request }'}, export: {as: '${ {leak: .auth} }'}}\n"
    )
    secrets = {"apiToken": SECRET, "notDeclared": OTHER}
    result = await run(document, {"in": 1}, hooks=hooks, http=http, secrets=secrets)
    # The real values reach the server...
    assert server.echoed[0]["authorization"] == f"Bearer {SECRET}"
    assert server.echoed[0]["x-key"] == SECRET
    # ...and flow through the data, but the output handed back is redacted.
    assert result["auth"] == "Bearer [REDACTED]"
    assert "authorization" not in {k.lower() for k in result["request"]["headers"]}
    assert hooks.last("/do/0/keyed").output == {"len": len(SECRET), "other": None}
    # ...the host never does.
    dumped = hooks.dump()
    assert SECRET not in dumped
    assert OTHER not in dumped
    assert hooks.last("/do/0/keyed").input == "[REDACTED]"
    assert "[REDACTED]" in str(hooks.last("/do/2/keep").output)
    assert hooks.checkpoints[-1]["context"] == {"leak": "Bearer [REDACTED]"}


async def test_secrets_are_removed_from_raised_errors() -> None:
    hooks = Hooks()
    document = doc(
        "use: {secrets: [apiToken]}\n"
        "do:\n  - boom: {raise: {error: {type: https://e/x, status: 400, "
        "detail: '${ \"token is \" + $secrets.apiToken }'}}}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        await run(document, hooks=hooks, secrets={"apiToken": SECRET})
    assert SECRET not in str(caught.value.as_dict())
    assert caught.value.detail == "token is [REDACTED]"
    assert SECRET not in hooks.dump()


async def test_a_declared_secret_that_is_not_provided_fails_the_run() -> None:
    document = doc("use: {secrets: [missing]}\ndo:\n  - a: {set: {}}\n")
    with pytest.raises(WorkflowError) as caught:
        await run(document)
    assert caught.value.type == CONFIGURATION
    assert "missing" in caught.value.detail
