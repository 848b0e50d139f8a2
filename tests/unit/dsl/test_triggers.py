"""`schedule.on`: its validation (with pointers) and how its strategy consumes events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polyfleet.dsl import load_document, validate_document
from polyfleet.dsl.schedule import event_trigger_of, schedule_of
from polyfleet.dsl.triggers import EventTrigger, filter_matches
from tests.unit.dsl.support import doc

BODY = "do:\n  - a: {set: {}}\n"
EXAMPLES = Path(__file__).parents[2] / "data" / "dsl-spec-examples"


def problems(block: str) -> dict[str, str]:
    document = doc(f"schedule: {block}\n{BODY}")
    return {p.pointer: p.message for p in validate_document(document)}


def test_the_spec_example_is_accepted() -> None:
    document = load_document((EXAMPLES / "schedule-event-driven.yaml").read_text())
    assert validate_document(document) == []
    assert schedule_of(document) is None  # no Temporal Schedule
    assert event_trigger_of(document) == {
        "one": {"with": {"type": "com.example.hospital.events.patients.heartbeat.low"}}
    }


@pytest.mark.parametrize(
    "block",
    [
        "{on: {one: {with: {type: a}}}}",
        "{'on': {any: []}}",
        "{'on': {any: [{with: {type: a}}, {with: {source: /s, data: {x: 1}}}]}}",
        "{'on': {all: [{with: {type: a}}, {with: {data: '${ .n > 2 }'}}]}}",
        "{'on': {one: {with: {type: '${ \"a\" + \"b\" }', myext: v}}}}",
    ],
)
def test_a_valid_strategy_is_accepted(block: str) -> None:
    assert problems(block) == {}
    assert event_trigger_of(doc(f"schedule: {block}\n{BODY}")) is not None


@pytest.mark.parametrize(
    ("block", "pointer", "message"),
    [
        ("{'on': []}", "/schedule/on", "event consumption strategy"),
        ("{'on': {}}", "/schedule/on", "exactly one of 'one', 'all' or 'any'"),
        ("{'on': {one: {}, any: []}}", "/schedule/on", "exactly one of 'one', 'all' or 'any'"),
        ("{'on': {all: []}}", "/schedule/on/all", "a non-empty list"),
        ("{'on': {any: {}}}", "/schedule/on/any", "'any' must be a list"),
        ("{'on': {any: [], until: false}}", "/schedule/on/until", "'until' is not supported"),
        (
            "{'on': {one: {with: {type: a}, correlate: {k: {from: .id}}}}}",
            "/schedule/on/one/correlate",
            "'correlate' is not supported",
        ),
        ("{'on': {one: {with: {Type: a}}}}", "/schedule/on/one/with/Type", "not a CloudEvents"),
        ("{'on': {one: {with: {type: 5}}}}", "/schedule/on/one/with/type", "must be a string"),
        (
            "{'on': {one: {with: {type: '${ $input.t }'}}}}",
            "/schedule/on/one/with/type",
            "no $ variables",
        ),
        ("{'on': {one: {with: {data: '${ .a | }'}}}}", "/schedule/on/one/with/data", ""),
        ("{'on': {one: {when: {}}}}", "/schedule/on/one/when", "unknown property 'when'"),
        ("{'on': {one: 5}}", "/schedule/on/one", "an event filter must be an object"),
    ],
)
def test_an_invalid_strategy_is_a_problem_at_its_pointer(
    block: str, pointer: str, message: str
) -> None:
    found = problems(block)
    assert pointer in found, found
    assert message in found[pointer]
    with pytest.raises(ValueError, match=pointer):
        event_trigger_of(doc(f"schedule: {block}\n{BODY}"))


def event(type: str = "a", source: str = "/s", data: Any = None, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"id": "1", "source": source, "type": type, **extra}
    if data is not None:
        found["data"] = data
    return found


@pytest.mark.parametrize(
    ("with_", "matched", "unmatched"),
    [
        ({"type": "a"}, event("a"), event("b")),
        ({"type": '${ "a" }'}, event("a"), event("b")),
        ({"source": "/s", "myext": "v"}, event(myext="v"), event(myext="w")),
        ({"data": {"p": {"id": 1}}}, event(data={"p": {"id": 1, "n": 2}}), event(data={"p": 1})),
        ({"data": "${ .n > 2 }"}, event(data={"n": 3}), event(data={"n": 2})),
        # An expression that fails (`.n` of a string) is no match.
        ({"data": "${ .n > 2 }"}, event(data={"n": 3}), event(data="text")),
    ],
)
def test_filters(with_: dict[str, Any], matched: dict[str, Any], unmatched: dict[str, Any]) -> None:
    assert filter_matches({"with": with_}, matched)
    assert not filter_matches({"with": with_}, unmatched)


def test_one_and_any_start_with_each_matching_event() -> None:
    state: dict[str, Any] = {}
    one = EventTrigger({"one": {"with": {"type": "a"}}})
    assert one.feed(state, event("b"), 1) is None
    assert one.feed(state, event("a"), 2) == [(2, event("a"))]
    assert one.feed(state, event("a"), 3) == [(3, event("a"))]
    anything = EventTrigger({"any": []})
    assert anything.feed(state, event("z"), 4) == [(4, event("z"))]
    some = EventTrigger({"any": [{"with": {"type": "a"}}, {"with": {"type": "b"}}]})
    assert some.feed(state, event("c"), 5) is None
    assert some.feed(state, event("b"), 6) == [(6, event("b"))]
    assert state == {}


def test_all_waits_for_one_event_per_filter_and_starts_over() -> None:
    trigger = EventTrigger({"all": [{"with": {"type": "a"}}, {"with": {"type": "b"}}]})
    state: dict[str, Any] = {}
    assert trigger.feed(state, event("b"), 1) is None
    # A second `b` is not consumed: its filter has matched already.
    assert trigger.feed(state, event("b", id="2"), 2) is None
    assert state == {"pending": [[1, 1, event("b")]]}
    assert trigger.feed(state, event("c"), 3) is None
    assert trigger.feed(state, event("a"), 4) == [(1, event("b")), (4, event("a"))]
    assert state == {}
    assert trigger.feed(state, event("a"), 5) is None
    assert state == {"pending": [[0, 5, event("a")]]}


def test_an_event_is_consumed_by_one_filter_only() -> None:
    trigger = EventTrigger({"all": [{"with": {"type": "a"}}, {"with": {"source": "/s"}}]})
    state: dict[str, Any] = {}
    assert trigger.feed(state, event("a"), 1) is None
    assert trigger.feed(state, event("a"), 2) == [(1, event("a")), (2, event("a"))]
