"""Fetching catalog and URL functions at apply time (orchestrator/function_sources.py).

A fake transport stands in for the network; tests/integration/workflows/
test_catalog_functions.py fetches from a real server through a fleet.
"""

from __future__ import annotations

import json

import httpx
import pytest

from orchestrator.errors import InvalidArgumentError, UnavailableError
from orchestrator.function_sources import FunctionSources
from polyfleet.dsl import load_document

BASE = "https://functions.example/cat"
DOCUMENT = load_document(
    "document: {dsl: '1.0.3', namespace: t, name: w, version: '1'}\n"
    f"use:\n  catalogs:\n    mine: {{endpoint: '{BASE}'}}\n"
    "do:\n"
    "  - a: {call: 'log:1.0.0@mine', with: {message: hi}}\n"
    f"  - b: {{call: '{BASE}/functions/other/2.0.0/function.yaml'}}\n"
    "  - c: {call: 'log:1.0.0@mine'}\n"
)
LOG_YAML = b"set:\n  logged: '${ .message }'\n"


def sources(
    answer: httpx.Response | Exception | None = None,
    *,
    routes: dict[str, httpx.Response] | None = None,
    prefixes: tuple[str, ...] = (f"{BASE}/",),
    max_bytes: int = 1000,
) -> tuple[FunctionSources, list[str]]:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if isinstance(answer, Exception):
            raise answer
        if routes is not None:
            return routes.get(str(request.url), httpx.Response(404))
        return answer or httpx.Response(200, content=LOG_YAML)

    fetcher = FunctionSources(
        prefixes, timeout=2, max_bytes=max_bytes, transport=httpx.MockTransport(handle)
    )
    return fetcher, seen


async def test_every_reference_is_fetched_once_and_kept_as_json() -> None:
    fetcher, seen = sources()
    resolved = await fetcher.resolve(DOCUMENT, "workflow.document")
    assert seen == [
        f"{BASE}/functions/log/1.0.0/function.yaml",
        f"{BASE}/functions/other/2.0.0/function.yaml",
    ]
    assert {ref: json.loads(body) for ref, body in resolved.items()} == {
        "log:1.0.0@mine": {"set": {"logged": "${ .message }"}},
        f"{BASE}/functions/other/2.0.0/function.yaml": {"set": {"logged": "${ .message }"}},
    }


async def test_a_document_without_external_functions_fetches_nothing() -> None:
    fetcher, seen = sources()
    plain = load_document(
        "document: {dsl: '1.0.3', namespace: t, name: w, version: '1'}\ndo:\n  - a: {set: {x: 1}}\n"
    )
    assert await fetcher.resolve(plain, "workflow.document") == {}
    assert seen == []


async def test_a_source_outside_the_setting_is_refused_naming_the_pointer_and_setting() -> None:
    fetcher, seen = sources(prefixes=("https://raw.githubusercontent.com/serverlessworkflow/",))
    with pytest.raises(InvalidArgumentError) as caught:
        await fetcher.resolve(DOCUMENT, "workflow.document")
    assert caught.value.field == "workflow.document/do/0/a/call"
    assert "POLYFLEET_DSL_FUNCTION_SOURCES" in caught.value.problem
    assert seen == []


async def test_a_missing_function_is_invalid_naming_the_pointer() -> None:
    fetcher, _ = sources(httpx.Response(404))
    with pytest.raises(InvalidArgumentError) as caught:
        await fetcher.resolve(DOCUMENT, "workflow.document")
    assert caught.value.field == "workflow.document/do/0/a/call"
    assert caught.value.problem == (
        f"the function definition {BASE}/functions/log/1.0.0/function.yaml is not found (HTTP 404)"
    )


@pytest.mark.parametrize(
    "answer",
    [httpx.Response(503), httpx.ConnectError("refused"), httpx.ReadTimeout("slow")],
)
async def test_an_unreachable_source_is_unavailable_naming_the_url(
    answer: httpx.Response | Exception,
) -> None:
    fetcher, _ = sources(answer)
    with pytest.raises(UnavailableError) as caught:
        await fetcher.resolve(DOCUMENT, "workflow.document")
    assert f"{BASE}/functions/log/1.0.0/function.yaml" in str(caught.value)
    assert "apply again later" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        (b"x" * 1001, "is larger than 1000 bytes"),
        (b"- just\n- a list\n", "is not a task definition"),
        (b"a: [unclosed\n", "is not a task definition"),
        (b"\xff\xfe", "is not UTF-8 text"),
    ],
)
async def test_a_definition_that_is_not_a_task_is_invalid(body: bytes, phrase: str) -> None:
    fetcher, _ = sources(httpx.Response(200, content=body))
    with pytest.raises(InvalidArgumentError) as caught:
        await fetcher.resolve(DOCUMENT, "workflow.document")
    assert caught.value.field == "workflow.document/do/0/a/call"
    assert phrase in caught.value.problem


async def test_redirects_are_followed_only_inside_the_allowed_sources() -> None:
    log = f"{BASE}/functions/log/1.0.0/function.yaml"
    other = f"{BASE}/functions/other/2.0.0/function.yaml"
    moved = f"{BASE}/moved/log.yaml"
    fetcher, seen = sources(
        routes={
            log: httpx.Response(302, headers={"location": "/cat/moved/log.yaml"}),
            moved: httpx.Response(200, content=LOG_YAML),
            other: httpx.Response(301, headers={"location": "https://elsewhere.example/x"}),
        }
    )
    with pytest.raises(InvalidArgumentError) as caught:
        await fetcher.resolve(DOCUMENT, "workflow.document")
    assert seen == [log, moved, other]
    assert caught.value.field == "workflow.document/do/1/b/call"
    assert "https://elsewhere.example/x is not under an allowed" in caught.value.problem
