"""The task-type registry: every task type registered once, recognised in a stable order."""

from __future__ import annotations

from polyfleet.dsl import Problem, validate_document
from polyfleet.dsl.registry import call_names, keywords, report_type, task_type, type_of
from tests.unit.dsl.support import doc


def test_every_task_type_and_call_function_is_registered() -> None:
    assert keywords() == (
        *("call", "do", "emit", "for", "fork", "listen", "raise", "run", "set", "switch"),
        *("try", "wait"),
    )
    assert call_names() == ("http", "agent", "openapi", "grpc", "mcp")
    for keyword in keywords():
        spec = type_of({keyword: None})
        assert spec is not None and keyword in spec.keys


def test_a_keyword_that_another_type_also_has_names_its_type_last() -> None:
    assert task_type({"for": {"in": ".items"}, "do": []}) == "for"
    assert task_type({"do": []}) == "do"
    assert task_type({"emit": {}, "do": []}) == "emit"
    assert task_type({"then": "end"}) is None


def test_a_task_naming_two_types_is_the_first_registered() -> None:
    assert task_type({"set": {}, "switch": []}) == "set"
    assert task_type({"raise": {}, "call": "http"}) == "call"


def test_reports_name_the_called_function() -> None:
    assert report_type({"call": "http", "with": {}}) == "call:http"
    assert report_type({"wait": "PT1S"}) == "wait"
    assert report_type({"run": {"shell": {"command": "x"}}}) == "run:shell"
    assert report_type({"run": {"workflow": {"name": "x"}}, "return": "all"}) == "run:workflow"
    assert report_type({}) == "unknown"


def test_validation_names_the_registered_types_and_functions() -> None:
    problems = validate_document(
        doc("do:\n  - a: {call: ftp, with: {}}\n  - b: {set: {x: 1}, switch: []}\n")
    )
    assert problems == [
        Problem(
            "/do/0/a/call",
            "unsupported call 'ftp': this runtime supports call: http, call: agent, "
            "call: openapi, call: grpc, call: mcp and the functions defined in use.functions",
        ),
        Problem("/do/1/b/switch", "a task has one type: 'switch' conflicts with 'set'"),
    ]
