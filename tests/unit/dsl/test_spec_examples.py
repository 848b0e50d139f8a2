"""The specification's own example documents: each accepted, or rejected for a stated reason.

tests/data/dsl-spec-examples holds the 66 examples of the DSL 1.0 specification. A document
polyfleet cannot run must be rejected at apply time at a JSON pointer with a reason (never
skipped); this test pins which are accepted and why the others are not, so a regression in
either direction fails here. docs/dsl.md lists the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from polyfleet.config import ExecutionSettings
from polyfleet.dsl import InvalidDocumentError, load_document, validate_document
from polyfleet.dsl.catalogs import allowed, function_url
from polyfleet.dsl.validation import function_references

EXAMPLES = Path(__file__).parents[2] / "data" / "dsl-spec-examples"

_ASYNCAPI = "call: asyncapi is not supported"
_CONTAINER = "`run: container` is not supported"

#: Rejected documents: (pointer of the first problem, a phrase of its message). Every other
#: example is accepted (48 of 66).
REJECTED: dict[str, tuple[str, str]] = {
    # A message broker (Kafka, AMQP, MQTT...) is not assumed.
    "call-asyncapi-publish.yaml": ("/do/0/findPet/call", _ASYNCAPI),
    "call-asyncapi-subscribe-consume-amount.yaml": ("/do/0/getNotifications/call", _ASYNCAPI),
    "call-asyncapi-subscribe-consume-forever-foreach.yaml": (
        "/do/0/getNotifications/call",
        _ASYNCAPI,
    ),
    "call-asyncapi-subscribe-consume-until.yaml": ("/do/0/getNotifications/call", _ASYNCAPI),
    "call-asyncapi-subscribe-consume-while.yaml": ("/do/0/getNotifications/call", _ASYNCAPI),
    # A document may not start processes on a runner through MCP's stdio transport.
    "call-mcp.yaml": (
        "/do/0/publishMessageToSlack/with/transport/stdio",
        "the stdio transport is not supported",
    ),
    "listen-to-any-forever-foreach.yaml": (
        "/do/0/listenToGossips/foreach",
        "'foreach' over listened events is not supported",
    ),
    "mock-service-extension.yaml": ("/use/extensions", "'extensions' is not supported"),
    # No container runtime is assumed on runners (docs/dsl.md, "run").
    **{
        name: ("/do/0/runContainer/run/container", _CONTAINER)
        for name in (
            "run-container-cleanup-always.yaml",
            "run-container-cleanup-eventually.yaml",
            "run-container-with-name.yaml",
            "run-container-with-pull-policy.yaml",
            "run-container.yaml",
            "run-return-all.yaml",
            "run-return-code.yaml",
            "run-return-none.yaml",
            "run-return-stderr.yaml",
        )
    },
    "run-container-stdin-and-arguments.yaml": ("/do/1/runContainer/run/container", _CONTAINER),
}


def _first_problem(name: str) -> tuple[str, str] | None:
    try:
        document = load_document((EXAMPLES / name).read_text(encoding="utf-8"))
    except InvalidDocumentError as err:
        return "", str(err)
    problems = validate_document(document)
    return (problems[0].pointer, problems[0].message) if problems else None


def _names() -> list[str]:
    return sorted(path.name for path in EXAMPLES.glob("*.yaml"))


def test_all_examples_are_here() -> None:
    assert len(_names()) == 66
    assert set(REJECTED) <= set(_names())
    assert len(_names()) - len(REJECTED) == 48


def test_the_cataloged_function_example_is_fetched_from_the_default_source() -> None:
    # Accepted syntactically above; applying it fetches the function (the orchestrator's
    # step), which the default POLYFLEET_DSL_FUNCTION_SOURCES allows: the official catalog.
    text = (EXAMPLES / "call-custom-function-cataloged.yaml").read_text(encoding="utf-8")
    document = load_document(text)
    (reference,) = function_references(document)
    assert allowed(function_url(document, reference), ExecutionSettings().dsl_function_sources)


@pytest.mark.parametrize("name", _names())
def test_example_is_accepted_or_rejected_for_its_reason(name: str) -> None:
    problem = _first_problem(name)
    if name not in REJECTED:
        assert problem is None, f"{name} should be accepted: {problem}"
        return
    assert problem is not None, f"{name} is accepted now: drop it from REJECTED"
    pointer, phrase = REJECTED[name]
    assert problem[0] == pointer and phrase in problem[1], problem
