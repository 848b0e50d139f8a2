"""The document's top-level `schedule`: validation (with pointers) and its parsed form."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from polyfleet.dsl import validate_document
from polyfleet.dsl.schedule import (
    WorkflowSchedule,
    cron_problem,
    normalize_cron,
    schedule_of,
    schedule_problems,
)
from tests.unit.dsl.support import doc

BODY = "do:\n  - a: {set: {}}\n"


def problems(block: str) -> dict[str, str]:
    document = doc(f"schedule: {block}\n{BODY}")
    return {p.pointer: p.message for p in validate_document(document)}


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("{every: PT1S}", WorkflowSchedule(every=timedelta(seconds=1))),
        ("{every: {minutes: 5}}", WorkflowSchedule(every=timedelta(minutes=5))),
        ("{cron: '0 0 * * *'}", WorkflowSchedule(cron="0 0 * * *")),
        ("{cron: '0  9 * jan-Mar MON-FRI'}", WorkflowSchedule(cron="0 9 * 1-3 1-5")),
        ("{cron: '@Daily'}", WorkflowSchedule(cron="@daily")),
        ("{after: {milliseconds: 1500}}", WorkflowSchedule(after=timedelta(seconds=1.5))),
    ],
)
def test_a_valid_schedule_is_accepted_and_parsed(block: str, expected: WorkflowSchedule) -> None:
    assert problems(block) == {}
    assert schedule_of(doc(f"schedule: {block}\n{BODY}")) == expected


def test_a_document_without_schedule_has_none() -> None:
    assert schedule_of(doc(BODY)) is None


@pytest.mark.parametrize(
    ("block", "pointer", "message"),
    [
        ("[]", "/schedule", "'schedule' must be an object"),
        ("{}", "/schedule", "a schedule needs one of every, cron, after or on"),
        ("{every: PT0.5S}", "/schedule/every", "0.5s is shorter than the minimum, 1 second"),
        ("{every: PT1.5S}", "/schedule/every", "1.5s is not a whole number of seconds"),
        ("{every: soon}", "/schedule/every", "is not a supported ISO 8601 duration"),
        ("{after: -1}", "/schedule/after", "a duration must be"),
        ("{cron: 5}", "/schedule/cron", "'cron' must be a string"),
        ("{cron: '* * *'}", "/schedule/cron", "has 3 fields; a cron expression has 5"),
        ("{cron: '61 * * * *'}", "/schedule/cron", "minute '61': 61 is outside 0..59"),
        ("{every: PT1M, cron: '@daily'}", "/schedule/cron", "exactly one of every, cron"),
        ("{at: noon}", "/schedule/at", "unknown property 'at'"),
        ("{every: PT1M, 'on': {one: {}}}", "/schedule/on", "exactly one of every, cron, after"),
        ("{on: {one: {with: {type: x}}, until: false}}", "/schedule/on/until", "'until' is not"),
    ],
)
def test_an_invalid_schedule_is_a_problem_at_its_pointer(
    block: str, pointer: str, message: str
) -> None:
    found = problems(block)
    assert pointer in found, found
    assert message in found[pointer]
    with pytest.raises(ValueError, match=pointer):
        schedule_of(doc(f"schedule: {block}\n{BODY}"))


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("*/15 0-6/2 1,15 * 0", ""),
        ("0 12 * DEC SUN", ""),
        ("@hourly", ""),
        ("", "must not be empty"),
        ("@every 5s", "unknown shorthand"),
        ("* * * * * *", "has 6 fields"),
        ("5-1 * * * *", "the range 5-1 is empty"),
        ("*/0 * * * *", "a step must be at least 1"),
        ("5/15 * * * *", "a step needs * or a range"),
        ("* 24 * * *", "hour '24': 24 is outside 0..23"),
        ("* * 0 * *", "day of month '0': 0 is outside 1..31"),
        ("* * * FOO *", "'FOO' is not a number or a name"),
        ("* * * * 7", "day of week '7': 7 is outside 0..6"),
        ("? * * * *", "is not *, a value, a range"),
        ("0 " * 120, "at most 200 characters"),
    ],
)
def test_cron_expressions(expression: str, problem: str) -> None:
    found = cron_problem(expression)
    assert (problem in found) if problem else found == "", found


def test_names_become_numbers_for_temporal() -> None:
    assert normalize_cron(" 0 0 1 feb,Dec sat ") == "0 0 1 2,12 6"


def test_problems_without_a_document() -> None:
    value: Any = {"every": "PT1S", "on": {}}
    assert [p.pointer for p in schedule_problems("/schedule", value)] == [
        "/schedule/on",
        "/schedule/on",
    ]
