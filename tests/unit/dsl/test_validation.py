"""Document loading and validation: every problem names its JSON pointer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from polyfleet.dsl import Engine, InvalidDocumentError, Problem, load_document, validate_document
from tests.unit.dsl.support import HEADER, Hooks, doc


def pointers(document: dict[str, Any], **kwargs: Any) -> dict[str, str]:
    return {p.pointer: p.message for p in validate_document(document, **kwargs)}


VALID = """
use: {secrets: [token]}
input: {from: "${ .order }"}
timeout: {after: PT1M}
do:
  - first: {set: {a: "${ .x }"}, export: {as: "${ $context + {a: .a} }"}}
  - second:
      do:
        - inner: {wait: PT0S}
  - callApi:
      call: http
      with: {method: get, endpoint: "http://127.0.0.1/x/{id}", headers: {a: b}}
  - ask: {call: agent, with: {agent: helper, message: "${ .q }"}}
  - choose:
      switch:
        - matched: {when: .a, then: loop}
        - other: {then: end}
  - loop:
      for: {each: it, in: .items, at: i}
      while: $i < 3
      do:
        - step: {set: "${ {v: $it} }"}
  - par: {fork: {compete: true, branches: [{a: {set: {}}}, {b: {wait: {seconds: 1}}}]}}
  - guarded:
      try:
        - fail: {raise: {error: {type: https://example.com/e, status: 400}}}
      catch:
        errors: {with: {status: 400}}
        as: err
        when: ${ $err.status == 400 }
        retry: {delay: PT1S, backoff: {exponential: {}}, limit: {attempt: {count: 3}}}
        do:
          - recover: {set: {message: "${ $err.title }"}}
output: {as: .}
"""


def test_a_document_using_every_supported_feature_is_valid() -> None:
    assert validate_document(doc(VALID), known_agents={"helper"}) == []


def test_unknown_task_type_is_named_by_pointer() -> None:
    problems = pointers(doc("do:\n  - a: {set: {}}\n  - b: {frobnicate: 1}\n"))
    assert list(problems) == ["/do/1/b"]
    assert "unknown task type" in problems["/do/1/b"]


def test_bad_jq_names_the_pointer_and_the_expression() -> None:
    problems = pointers(doc('do:\n  - a: {set: {x: "${ .a | | }"}}\n'))
    assert list(problems) == ["/do/0/a/set/x"]
    assert "`.a | |`" in problems["/do/0/a/set/x"]
    assert "syntax error" in problems["/do/0/a/set/x"]


def test_unknown_variable_is_a_problem_but_scoped_variables_are_not() -> None:
    document = doc(
        "do:\n"
        "  - l:\n"
        "      for: {in: .xs, each: it}\n"
        "      do:\n"
        '        - s: {set: {v: "${ $it + $index + $nope }"}}\n'
        '  - after: {set: {v: "${ $it }"}}\n'
    )
    problems = pointers(document)
    assert list(problems) == ["/do/0/l/do/0/s/set/v", "/do/1/after/set/v"]
    assert "$nope is not defined" in problems["/do/0/l/do/0/s/set/v"]
    assert "$it is not defined" in problems["/do/1/after/set/v"]


def test_unknown_then_target_is_a_problem() -> None:
    document = doc(
        "do:\n"
        "  - a: {set: {}, then: missing}\n"
        "  - b:\n"
        "      do:\n"
        "        - c: {set: {}, then: a}\n"  # a sibling of the parent, not of c
        "  - s: {switch: [{x: {when: .a, then: nowhere}}]}\n"
    )
    assert list(pointers(document)) == [
        "/do/0/a/then",
        "/do/1/b/do/0/c/then",
        "/do/2/s/switch/0/x/then",
    ]


def test_missing_endpoint_has_the_exact_pointer() -> None:
    document = doc(
        "do:\n  - a: {set: {}}\n  - b: {set: {}}\n  - callApi: {call: http, with: {method: get}}\n"
    )
    assert validate_document(document) == [
        Problem("/do/2/callApi/with/endpoint", "missing required property 'endpoint'")
    ]


def test_unknown_agent_is_a_problem_only_when_agents_are_known() -> None:
    document = doc("do:\n  - ask: {call: agent, with: {agent: ghost, message: hi}}\n")
    assert validate_document(document) == []
    assert pointers(document, known_agents=["helper"]) == {
        "/do/0/ask/with/agent": "unknown agent 'ghost'"
    }


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ("do:\n  - l: {listen: {to: {one: {}}}, foreach: {do: []}}\n", "/do/0/l/foreach"),
        ("do:\n  - r: {run: {container: {image: alpine}}}\n", "/do/0/r/run/container"),
        ("do:\n  - g: {call: asyncapi, with: {}}\n", "/do/0/g/call"),
        ("do:\n  - g: {call: 'log:1.0.0@global'}\n", "/do/0/g/call"),
        (
            "use: {catalogs: {c: {endpoint: x}}}\ndo:\n  - a: {set: {}}\n",
            "/use/catalogs/c/endpoint",
        ),
        (
            "schedule: {on: {one: {correlate: {}}}}\ndo:\n  - a: {set: {}}\n",
            "/schedule/on/one/correlate",
        ),
        ("evaluate: {mode: loose}\ndo:\n  - a: {set: {}}\n", "/evaluate/mode"),
        ("do:\n  - w: {wait: P1M}\n", "/do/0/w/wait"),
        (
            "do:\n  - c: {call: http, with: {method: get, endpoint: "
            "{uri: 'http://x', authentication: {certificate: {}}}}}\n",
            "/do/0/c/with/endpoint/authentication/certificate",
        ),
        (
            "do:\n  - t:\n      try: [{a: {set: {}}}]\n"
            "      catch: {retry: {backoff: {exponential: {factor: 3}}}}\n",
            "/do/0/t/catch/retry/backoff/exponential",
        ),
        (
            "do:\n  - t:\n      try: [{a: {set: {}}}]\n"
            "      catch: {retry: {limit: {attempt: {duration: PT1S}}}}\n",
            "/do/0/t/catch/retry/limit/attempt/duration",
        ),
        (
            "do:\n  - a: {set: {}, input: {schema: {format: json, resource: {endpoint: x}}}}\n",
            "/do/0/a/input/schema/resource",
        ),
        ("do:\n  - a: {set: {}, sett: {}}\n", "/do/0/a/sett"),
        ("do:\n  - a: {set: {}, call: http}\n", "/do/0/a/set"),
    ],
)
def test_unsupported_features_are_rejected_not_skipped(body: str, pointer: str) -> None:
    assert pointer in pointers(doc(body))


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ("do:\n  - r: {raise: {error: {type: x}}}\n", "/do/0/r/raise/error/status"),
        ("do:\n  - r: {raise: {error: undefinedError}}\n", "/do/0/r/raise/error"),
        ("do:\n  - a: {set: {}, timeout: later}\n", "/do/0/a/timeout"),
        ("do:\n  - a: {set: {}}\n  - a: {set: {}}\n", "/do/1/a"),
        ("do:\n  - s: {switch: [{x: {then: end}}, {y: {then: end}}]}\n", "/do/0/s/switch/1/y"),
        ("do:\n  - f: {for: {each: it}, do: [{a: {set: {}}}]}\n", "/do/0/f/for/in"),
        ("do:\n  - f: {fork: {branches: []}}\n", "/do/0/f/fork/branches"),
        ("do:\n  - t: {try: [{a: {set: {}}}]}\n", "/do/0/t/catch"),
        ("do:\n  - c: {call: agent, with: {agent: a}}\n", "/do/0/c/with/message"),
        ("do:\n  - c: {call: http, with: {method: FETCH, endpoint: x}}\n", "/do/0/c/with/method"),
        ("do: []\n", "/do"),
    ],
)
def test_missing_or_wrong_fields_are_named(body: str, pointer: str) -> None:
    assert pointer in pointers(doc(body))


def test_document_header_is_checked() -> None:
    problems = pointers(load_document("document: {dsl: '2.0.0', name: x, version: 1.0}\ndo: []\n"))
    assert "/document/dsl" in problems
    assert "/document/namespace" in problems
    assert "quote it" in problems["/document/version"]
    assert "document" in pointers(load_document("do:\n  - a: {set: {}}\n")).get("/document", "")


def test_task_names_with_slashes_are_escaped_in_pointers() -> None:
    problems = pointers(doc("do:\n  - a/b~c: {frobnicate: 1}\n"))
    assert list(problems) == ["/do/0/a~1b~0c"]


def test_load_document_reports_the_yaml_line() -> None:
    with pytest.raises(InvalidDocumentError) as caught:
        load_document(HEADER + "do:\n  - a: {set: {]\n")
    assert "line 3" in str(caught.value)


def test_load_document_accepts_json_and_keeps_dates_as_strings() -> None:
    assert load_document('{"do": []}') == {"do": []}
    assert load_document("when: 2024-01-01\n") == {"when": "2024-01-01"}
    with pytest.raises(InvalidDocumentError):
        load_document("- a\n- b\n")
    with pytest.raises(InvalidDocumentError):
        load_document('{"do": [}')


def test_invalid_document_error_lists_pointer_and_message() -> None:
    error = InvalidDocumentError([Problem("/do/0/a", "bad"), Problem("", "worse")])
    assert str(error) == "/do/0/a: bad\n/: worse"


async def test_engine_refuses_an_invalid_document() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(InvalidDocumentError) as caught:
            Engine(doc("do:\n  - a: {emit: {}}\n"), Hooks(), http=client)
    assert caught.value.problems[0].pointer == "/do/0/a/emit/event"


def test_interpolation_inside_a_longer_string_is_rejected() -> None:
    problems = pointers(doc('do:\n  - a: {set: {greeting: "Hello ${ .name }!"}}\n'))
    assert list(problems) == ["/do/0/a/set/greeting"]
    assert "whole value" in problems["/do/0/a/set/greeting"]
