"""`use.functions`: named task definitions run by `call: <name>`; catalogs stay rejected."""

from __future__ import annotations

import json

import httpx
import pytest

from polyfleet.dsl import VALIDATION, Engine, WorkflowError, validate_document
from tests.unit.dsl.support import Hooks, Server, doc, run
from tests.unit.dsl.test_resume import crash_while


def pointers(body: str) -> dict[str, str]:
    return {p.pointer: p.message for p in validate_document(doc(body))}


FUNCTIONS = """
use:
  functions:
    double:
      input: {schema: {format: json, document: {type: object, required: [n]}}}
      set: {v: '${ .n * 2 }'}
    twice:
      call: double
      with: {n: '${ .x }'}
    getEcho:
      call: http
      with: {method: get, endpoint: '${ $env.BASE + "/echo" }', query: {who: '${ .who }'}}
"""


async def test_a_function_runs_with_its_with_as_input_and_is_reported_as_a_child() -> None:
    hooks = Hooks()
    document = doc(
        FUNCTIONS + "do:\n"
        "  - a: {call: twice, with: {x: '${ .n }'}}\n"
        "  - b: {call: double, with: {n: '${ .v }'}}\n"
    )
    assert await run(document, {"n": 3}, hooks=hooks) == {"v": 12}
    assert hooks.phases() == [
        ("RUNNING", "/do/0/a"),
        ("RUNNING", "/do/0/a/function/twice"),
        ("RUNNING", "/do/0/a/function/twice/function/double"),
        ("COMPLETED", "/do/0/a/function/twice/function/double"),
        ("COMPLETED", "/do/0/a/function/twice"),
        ("COMPLETED", "/do/0/a"),
        ("RUNNING", "/do/1/b"),
        ("RUNNING", "/do/1/b/function/double"),
        ("COMPLETED", "/do/1/b/function/double"),
        ("COMPLETED", "/do/1/b"),
    ]
    assert hooks.last("/do/0/a/function/twice").type == "call:double"
    assert hooks.last("/do/0/a").type == "call:twice"


async def test_a_function_calling_http_sees_its_arguments_not_the_callers_data(
    server: Server, http: httpx.AsyncClient
) -> None:
    document = doc(FUNCTIONS + "do:\n  - e: {call: getEcho, with: {who: '${ .name }'}}\n")
    result = await run(document, {"name": "ada", "who": "not me"}, http=http,
                       env={"BASE": server.url})  # fmt: skip
    assert result["query"] == {"who": "ada"}


async def test_without_with_the_function_gets_the_callers_input() -> None:
    document = doc(FUNCTIONS + "do:\n  - d: {call: double}\n")
    assert await run(document, {"n": 5}) == {"v": 10}


async def test_the_functions_own_input_schema_is_enforced() -> None:
    document = doc(FUNCTIONS + "do:\n  - d: {call: double, with: {m: 1}}\n")
    with pytest.raises(WorkflowError) as caught:
        await run(document, {})
    assert caught.value.type == VALIDATION
    assert caught.value.instance == "/do/0/d/function/double"


def test_functions_are_checked_at_their_own_pointer() -> None:
    problems = pointers(
        "use:\n"
        "  functions:\n"
        "    bad: {set: {x: '${ .a | | }'}}\n"
        "    http: {set: {}}\n"
        "    loopA: {call: loopB}\n"
        "    loopB: {call: loopA}\n"
        "do:\n"
        "  - a: {call: bad}\n"
        "  - b: {call: missing, with: {}}\n"
        "  - c: {call: bad, with: [1]}\n"
    )
    assert "invalid jq expression" in problems["/use/functions/bad/set/x"]
    assert "built-in function" in problems["/use/functions/http"]
    assert "calls itself" in problems["/use/functions/loopA/call"]
    assert "calls itself" in problems["/use/functions/loopB/call"]
    assert "unsupported call 'missing'" in problems["/do/1/b/call"]
    assert "use.functions" in problems["/do/1/b/call"]
    assert problems["/do/2/c/with"] == "'with' must be an object"


def test_catalog_functions_and_asyncapi_are_rejected_with_the_reason() -> None:
    problems = pointers(
        "use:\n  catalogs: {global: {endpoint: {uri: 'https://example.com/catalog'}}}\n"
        "do:\n"
        "  - a: {call: 'log:1.0.0@global', with: {message: hi}}\n"
        "  - b: {call: asyncapi, with: {document: {endpoint: x}}}\n"
        "  - c: {call: 'https://example.com/functions/log/1.0.0/function.yaml'}\n"
    )
    assert problems["/use/catalogs"] == "'catalogs' is not supported"
    assert "catalog functions" in problems["/do/0/a/call"]
    assert "no broker is assumed" in problems["/do/1/b/call"]
    assert "called by URL" in problems["/do/2/c/call"]


async def test_resume_inside_a_function_repeats_only_the_task_in_flight(
    server: Server, http: httpx.AsyncClient
) -> None:
    document = doc(
        "use:\n"
        "  functions:\n"
        "    steps:\n"
        "      do:\n"
        "        - f1: {call: http, with: {method: post,\n"
        "               endpoint: '${ $env.BASE + \"/count/f1\" }'}}\n"
        "        - f2: {call: http, with: {method: get,\n"
        "               endpoint: '${ $env.BASE + \"/slow/f2?ms=\" + $env.HOLD }'}}\n"
        "        - f3: {call: http, with: {method: post,\n"
        "               endpoint: '${ $env.BASE + \"/count/f3\" }'}}\n"
        "do:\n"
        "  - s: {call: steps}\n"
    )
    first = Hooks()
    await crash_while(document, first, http, {"BASE": server.url, "HOLD": "5000"}, server, "f2")
    checkpoint = json.loads(json.dumps(first.checkpoints[-1]))
    second = Hooks()
    env = {"BASE": server.url, "HOLD": "10"}
    result = await Engine(document, second, http=http, env=env, resume=checkpoint).run({})
    assert result == {"name": "f3", "count": 1}
    assert (server.calls["f1"], server.calls["f2"], server.calls["f3"]) == (1, 2, 1)
    assert [r.id for r in second.reports if r.phase == "RUNNING"] == [
        "/do/0/s",
        "/do/0/s/function/steps",
        "/do/0/s/function/steps/do/1/f2",
        "/do/0/s/function/steps/do/2/f3",
    ]
