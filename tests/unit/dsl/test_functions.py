"""`use.functions`, catalog functions and functions by URL, run by `call: <name>`.

The catalog and URL parts here are the kernel's (reference syntax, URLs, checking a
resolved definition, running it); fetching is the orchestrator's
(tests/unit/orchestrator/test_function_sources.py and
tests/integration/workflows/test_catalog_functions.py).
"""

from __future__ import annotations

import json

import httpx
import pytest

from polyfleet.dsl import (
    VALIDATION,
    Engine,
    InvalidDocumentError,
    WorkflowError,
    load_document,
    validate_document,
)
from polyfleet.dsl.catalogs import allowed, function_url
from polyfleet.dsl.validation import function_references, runner_requirements
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


CATALOG_CALLS = (
    "use:\n  catalogs: {global: {endpoint: {uri: 'https://example.com/catalog/'}}}\n"
    "do:\n"
    "  - a: {call: 'log:1.0.0@global', with: {message: '${ .m }'}}\n"
    "  - b: {call: asyncapi, with: {document: {endpoint: x}}}\n"
    "  - c: {call: 'https://example.com/functions/log/1.0.0/function.yaml'}\n"
)


def test_catalog_and_url_functions_are_accepted_syntactically_asyncapi_is_not() -> None:
    # Without resolved definitions (the CLI, the spec examples), a well-formed reference to
    # a declared catalog passes: fetching it is the orchestrator's apply step.
    problems = pointers(CATALOG_CALLS)
    assert list(problems) == ["/do/1/b/call"]
    assert "no broker is assumed" in problems["/do/1/b/call"]
    assert function_references(doc(CATALOG_CALLS)) == {
        "log:1.0.0@global": "/do/0/a/call",
        "https://example.com/functions/log/1.0.0/function.yaml": "/do/2/c/call",
    }


def test_bad_references_and_catalogs_are_problems_at_their_pointer() -> None:
    problems = pointers(
        "use:\n"
        "  catalogs:\n"
        "    noUri: {endpoint: {authentication: {bearer: {token: t}}}}\n"
        "    ftp: {endpoint: 'ftp://example.com/c'}\n"
        "do:\n"
        "  - a: {call: 'log:1.0.0@nowhere'}\n"
        "  - b: {call: 'Log@default'}\n"
        "  - c: {call: 'file:///etc/function.yaml'}\n"
        "  - d: {call: 'https://user:pw@example.com/f.yaml'}\n"
        "  - e: {call: 'https://example.com/a/../f.yaml'}\n"
    )
    assert problems["/use/catalogs/noUri/endpoint/uri"] == "missing required property 'uri'"
    assert problems["/use/catalogs/noUri/endpoint/authentication"] == (
        "'authentication' is not supported"
    )
    assert "not an absolute http(s) URL" in problems["/use/catalogs/ftp/endpoint"]
    assert problems["/do/0/a/call"] == "unknown catalog 'nowhere' (not defined in use.catalogs)"
    assert "expected name:version@catalog" in problems["/do/1/b/call"]
    assert "not an absolute http(s) URL" in problems["/do/2/c/call"]
    assert "credentials" in problems["/do/3/d/call"]
    assert "'..'" in problems["/do/4/e/call"]


@pytest.mark.parametrize(
    ("use", "call", "url"),
    [
        # The default catalog is the specification's official one, on GitHub: its raw files.
        (
            "",
            "log:1.0.0@default",
            "https://raw.githubusercontent.com/serverlessworkflow/catalog/main/functions/log/1.0.0/function.yaml",
        ),
        (
            "{c: {endpoint: 'https://github.com/acme/fns/tree/v2'}}",
            "jwt-parser:1.0.0@c",
            "https://raw.githubusercontent.com/acme/fns/v2/functions/jwt-parser/1.0.0/function.yaml",
        ),
        (
            "{c: {endpoint: {uri: 'https://gitlab.com/g/p/-/tree/main/cat/'}}}",
            "log:2.1.0@c",
            "https://gitlab.com/g/p/-/raw/main/cat/functions/log/2.1.0/function.yaml",
        ),
        (
            "{default: {endpoint: 'http://127.0.0.1:8000/mine'}}",
            "log:1.0.0@default",
            "http://127.0.0.1:8000/mine/functions/log/1.0.0/function.yaml",
        ),
        # A URL of a directory gets its function.yaml; a file URL is kept.
        (
            "",
            "https://example.com/fns/log/1.0.0",
            "https://example.com/fns/log/1.0.0/function.yaml",
        ),
        ("", "https://example.com/f.json", "https://example.com/f.json"),
        (
            "",
            "https://github.com/serverlessworkflow/catalog/blob/main/functions/log/1.0.0/function.yaml",
            "https://raw.githubusercontent.com/serverlessworkflow/catalog/main/functions/log/1.0.0/function.yaml",
        ),
    ],
)
def test_a_reference_becomes_the_url_of_its_definition(use: str, call: str, url: str) -> None:
    document = {"use": {"catalogs": load_document(f"x: {use}")["x"]}} if use else {}
    assert function_url(document, call) == url


def test_allowed_prefixes_never_admit_files() -> None:
    sources = ["https://raw.githubusercontent.com/serverlessworkflow/catalog/", "file:///"]
    assert allowed(
        "https://raw.githubusercontent.com/serverlessworkflow/catalog/main/f.yaml", sources
    )
    assert not allowed("https://raw.githubusercontent.com/serverlessworkflow/other/f", sources)
    assert not allowed("file:///etc/passwd", sources)


LOG = {
    "input": {
        "schema": {
            "format": "json",
            "document": {
                "type": "object",
                "required": ["message"],
                "properties": {"message": {"type": "string"}},
            },
        }
    },
    "set": {"logged": '${ "[info] " + .message }'},
}


def test_a_resolved_definition_is_checked_as_a_task_at_the_calling_pointer() -> None:
    document = doc(
        CATALOG_CALLS.replace("  - b: {call: asyncapi, with: {document: {endpoint: x}}}\n", "")
    )
    url = "https://example.com/functions/log/1.0.0/function.yaml"
    bad = {"set": {"a": 1}, "bogus": True, "do": []}
    problems = validate_document(document, resolved_functions={"log:1.0.0@global": LOG})
    # Resolution asked for (the engine, the API): one not resolved is a problem.
    assert [(p.pointer, p.message) for p in problems] == [
        (
            "/do/1/c/call",
            f"the function '{url}' was not resolved when the workflow was applied: "
            "apply the workflow again through the API, which fetches catalog and URL functions",
        )
    ]
    problems = validate_document(document, resolved_functions={"log:1.0.0@global": LOG, url: bad})
    assert {p.pointer for p in problems} == {"/do/1/c/call"}
    messages = " | ".join(p.message for p in problems)
    assert f"the function '{url}' is not valid: at /bogus: unknown property 'bogus'" in messages
    nested = {"call": "log:1.0.0@global"}
    problems = validate_document(
        document, resolved_functions={"log:1.0.0@global": nested, url: LOG}
    )
    assert problems[0].pointer == "/do/0/a/call"
    assert "may not call another catalog or URL function" in problems[0].message


async def test_a_resolved_function_runs_like_a_use_function() -> None:
    hooks = Hooks()
    document = doc(
        "use:\n  catalogs: {mine: {endpoint: 'http://127.0.0.1:1/c'}}\n"
        "do:\n  - log: {call: 'log:1.0.0@mine', with: {message: '${ .m }'}}\n"
    )
    result = await run(document, {"m": "hi"}, hooks=hooks, functions={"log:1.0.0@mine": LOG})
    assert result == {"logged": "[info] hi"}
    assert ("COMPLETED", "/do/0/log/function/log:1.0.0@mine") in hooks.phases()
    # Not resolved: the engine refuses the document before running anything.
    with pytest.raises(InvalidDocumentError, match="was not resolved"):
        await run(document, {"m": "hi"})
    # The function's input schema applies to the call's `with`.
    with pytest.raises(WorkflowError) as caught:
        await run(document, {}, functions={"log:1.0.0@mine": LOG})
    assert caught.value.type == VALIDATION


def test_what_a_resolved_function_needs_of_the_runner_is_its_callers() -> None:
    document = doc("do:\n  - log: {call: 'log:1.0.0@default'}\n")
    script = {"run": {"script": {"language": "python", "code": "print(1)"}}}
    assert runner_requirements(document, {"log:1.0.0@default": script}) == {
        "script": ["/do/0/log/call"]
    }


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
