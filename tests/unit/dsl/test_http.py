"""`call: http` against a real local server, and try/retry around it."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from polyfleet.dsl import COMMUNICATION, TIMEOUT, WorkflowError
from tests.unit.dsl.support import Hooks, Server, doc, run


async def test_get_with_query_headers_and_uri_template(
    server: Server, http: httpx.AsyncClient
) -> None:
    document = doc(
        "do:\n"
        "  - callApi:\n"
        "      call: http\n"
        "      with:\n"
        "        method: get\n"
        f"        endpoint: {server.url}/echo?fixed=1\n"
        "        headers: {X-Trace: '${ .trace }', X-Count: 3}\n"
        "        query: {q: '${ .q }', flag: true, skip: null}\n"
    )
    result = await run(document, {"trace": "t-1", "q": "hello world"}, http=http)
    assert result["method"] == "GET"
    assert result["query"] == {"fixed": "1", "q": "hello world", "flag": "true"}
    assert result["headers"]["x-trace"] == "t-1"
    assert result["headers"]["x-count"] == "3"


async def test_post_json_body_to_an_endpoint_object(
    server: Server, http: httpx.AsyncClient
) -> None:
    hooks = Hooks()
    document = doc(
        "do:\n"
        "  - create:\n"
        "      call: http\n"
        "      with:\n"
        "        method: post\n"
        "        endpoint: {uri: '${ $env.BASE + \"/echo\" }'}\n"
        "        body: {name: '${ .name }', tags: [a, b]}\n"
    )
    result = await run(document, {"name": "rex"}, hooks=hooks, http=http, env={"BASE": server.url})
    assert result["method"] == "POST"
    assert result["body"] == {"name": "rex", "tags": ["a", "b"]}
    assert result["headers"]["content-type"] == "application/json"
    assert hooks.last("/do/0/create").type == "call:http"


async def test_uri_template_substitutes_top_level_input(
    server: Server, http: httpx.AsyncClient
) -> None:
    document = doc(
        "do:\n  - c: {call: http, with: {method: get, "
        f"endpoint: '{server.url}/count/{{petId}}'}}}}\n"
    )
    assert await run(document, {"petId": "p 1"}, http=http) == {"name": "p 1", "count": 1}


@pytest.mark.parametrize("fmt", ["content", "response", "raw"])
async def test_output_formats(server: Server, http: httpx.AsyncClient, fmt: str) -> None:
    document = doc(
        f"do:\n  - c: {{call: http, with: {{method: get, endpoint: '{server.url}/count/x', "
        f"output: {fmt}}}}}\n"
    )
    result = await run(document, http=http)
    if fmt == "content":
        assert result == {"name": "x", "count": 1}
    elif fmt == "response":
        assert result["statusCode"] == 200
        assert result["content"] == {"name": "x", "count": 1}
        assert result["headers"]["content-type"] == "application/json"
        assert result["request"] == {"method": "get", "uri": f"{server.url}/count/x", "headers": {}}
    else:
        assert base64.b64decode(result) == b'{"name":"x","count":1}'


async def test_text_and_binary_content(server: Server, http: httpx.AsyncClient) -> None:
    document = doc(
        "do:\n"
        f"  - t: {{call: http, with: {{method: get, endpoint: '{server.url}/text'}}, "
        "export: {as: '${ {text: .} }'}}\n"
        f"  - b: {{call: http, with: {{method: get, endpoint: '{server.url}/bytes'}}}}\n"
        "  - both: {set: {text: '${ $context.text }', bytes: '${ . }'}}\n"
    )
    assert await run(document, http=http) == {
        "text": "hello",
        "bytes": base64.b64encode(b"\x00\x01\xff").decode(),
    }


async def test_non_2xx_is_a_communication_error_with_status(
    server: Server, http: httpx.AsyncClient
) -> None:
    hooks = Hooks()
    document = doc(
        "do:\n  - callApi: {call: http, with: {method: get, "
        f"endpoint: '{server.url}/status/404'}}}}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        await run(document, hooks=hooks, http=http)
    error = caught.value
    assert (error.type, error.status, error.instance) == (COMMUNICATION, 404, "/do/0/callApi")
    assert "nope" in error.detail
    assert hooks.last("/do/0/callApi").phase == "FAILED"


async def test_connection_failure_is_a_communication_error(http: httpx.AsyncClient) -> None:
    from tests.helpers import free_port

    document = doc(
        "do:\n  - c: {call: http, with: {method: get, "
        f"endpoint: 'http://127.0.0.1:{free_port()}/x'}}}}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        await run(document, http=http)
    assert caught.value.type == COMMUNICATION


async def test_try_catches_an_http_error_by_status(server: Server, http: httpx.AsyncClient) -> None:
    document = doc(
        "do:\n"
        "  - guarded:\n"
        "      try:\n"
        "        - get: {call: http, with: {method: get, "
        f"endpoint: '{server.url}/status/404'}}}}\n"
        "      catch:\n"
        "        errors:\n"
        "          with: {type: https://serverlessworkflow.io/spec/1.0.0/errors/communication, "
        "status: 404}\n"
        "        do:\n"
        "          - fallback: {set: {found: false, status: '${ $error.status }'}}\n"
    )
    assert await run(document, http=http) == {"found": False, "status": 404}


RETRY = """
do:
  - guarded:
      try:
        - get: {{call: http, with: {{method: get, endpoint: '{url}/flaky/{key}?fail={fail}'}}}}
      catch:
        errors: {{with: {{status: 503}}}}
        retry:
          delay: {{milliseconds: 20}}
          backoff: {{{backoff}: {{}}}}
          limit: {{attempt: {{count: {count}}}}}
"""


async def test_retry_recovers_from_two_503s_then_200(
    server: Server, http: httpx.AsyncClient
) -> None:
    hooks = Hooks()
    document = doc(RETRY.format(url=server.url, key="k1", fail=2, backoff="constant", count=3))
    assert await run(document, hooks=hooks, http=http) == {"ok": True, "calls": 3}
    assert server.calls["k1"] == 3
    assert hooks.last("/do/0/guarded").attempts == 3
    assert hooks.last("/do/0/guarded").phase == "COMPLETED"
    get_reports = [(r.phase, r.attempts) for r in hooks.reports if r.id.endswith("/get")]
    assert get_reports == [
        ("RUNNING", 1),
        ("FAILED", 1),
        ("RUNNING", 2),
        ("FAILED", 2),
        ("RUNNING", 3),
        ("COMPLETED", 3),
    ]


async def test_retry_exhaustion_raises_the_last_error(
    server: Server, http: httpx.AsyncClient
) -> None:
    hooks = Hooks()
    document = doc(RETRY.format(url=server.url, key="k2", fail=10, backoff="linear", count=2))
    with pytest.raises(WorkflowError) as caught:
        await run(document, hooks=hooks, http=http)
    assert server.calls["k2"] == 3  # the first attempt and two retries
    assert caught.value.status == 503
    assert "call 3" in caught.value.detail
    assert hooks.last("/do/0/guarded").phase == "FAILED"


async def test_exponential_backoff_waits_longer_each_time(
    server: Server, http: httpx.AsyncClient
) -> None:
    document = doc(RETRY.format(url=server.url, key="k3", fail=3, backoff="exponential", count=3))
    started = time.monotonic()
    await run(document, http=http)
    # 20 ms, 40 ms, 80 ms
    assert time.monotonic() - started >= 0.14


async def test_exhausted_retries_fall_back_to_catch_do(
    server: Server, http: httpx.AsyncClient
) -> None:
    document = doc(
        RETRY.format(url=server.url, key="k4", fail=10, backoff="constant", count=1)
        + "        do:\n          - fallback: {set: {fallback: '${ $error.status }'}}\n"
    )
    assert await run(document, http=http) == {"fallback": 503}
    assert server.calls["k4"] == 2


async def test_task_timeout_names_the_task(server: Server, http: httpx.AsyncClient) -> None:
    hooks = Hooks()
    document = doc(
        "do:\n"
        "  - slowCall:\n"
        f"      call: http\n      with: {{method: get, endpoint: '{server.url}/slow/t?ms=3000'}}\n"
        "      timeout: {after: {milliseconds: 100}}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        await run(document, hooks=hooks, http=http)
    assert (caught.value.type, caught.value.status) == (TIMEOUT, 408)
    assert caught.value.instance == "/do/0/slowCall"
    assert "/do/0/slowCall" in caught.value.detail
    assert hooks.last("/do/0/slowCall").phase == "FAILED"
