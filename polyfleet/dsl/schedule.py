"""The document's top-level `schedule`: its validation and its parsed form.

A workflow with `schedule` is started by the host on that schedule (the orchestrator maps
it onto a Temporal Schedule, ``orchestrator/schedules.py``; `on` onto the events it follows,
``orchestrator/event_schedules.py``); the engine itself never reads it. Exactly one of
`every`, `cron`, `after` and `on` (start on events: :mod:`polyfleet.dsl.triggers`). The cron
dialect accepted here is a subset of Temporal's own
(five fields or an ``@hourly``-style shorthand), so whatever passes here Temporal accepts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from polyfleet.dsl.durations import DurationError, parse_duration
from polyfleet.dsl.errors import Problem
from polyfleet.dsl.expressions import escape
from polyfleet.dsl.triggers import on_problems

SCHEDULE_KEYS = frozenset({"every", "cron", "after", "on"})
# Temporal Schedules fire on whole seconds: a shorter interval cannot be honoured.
MIN_EVERY = timedelta(seconds=1)
MAX_CRON_CHARS = 200
SHORTHANDS = frozenset({"@yearly", "@monthly", "@weekly", "@daily", "@hourly"})

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# (name, low, high, names mapped to numbers)
_FIELDS: tuple[tuple[str, int, int, Mapping[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: index + 1 for index, name in enumerate(_MONTHS)}),
    ("day of week", 0, 6, {name: index for index, name in enumerate(_DAYS)}),
)
_ITEM = re.compile(r"^(?P<range>\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>\d+))?$")


@dataclass(frozen=True)
class WorkflowSchedule:
    """When a workflow starts on its own: exactly one attribute is set.

    Attributes:
        every: start one execution per interval (aligned to the Unix epoch, as Temporal
            aligns intervals).
        cron: a five-field cron expression (UTC) or a shorthand such as ``@daily``.
        after: start one execution this long after the workflow was applied.
    """

    every: timedelta | None = None
    cron: str | None = None
    after: timedelta | None = None

    def describe(self) -> str:
        """``every 30s``, ``cron 0 * * * *`` or ``after 5m``, for people."""
        if self.cron is not None:
            return f"cron {self.cron}"
        if self.every is not None:
            return f"every {_seconds(self.every)}"
        return f"after {_seconds(self.after or timedelta())}"


def _seconds(value: timedelta) -> str:
    return f"{value.total_seconds():g}s"


def cron_problem(expression: str) -> str:
    """Why ``expression`` is not a cron expression this runtime accepts; "" when it is."""
    text = expression.strip()
    if not text:
        return "a cron expression must not be empty"
    if len(text) > MAX_CRON_CHARS:
        return f"a cron expression is at most {MAX_CRON_CHARS} characters"
    if text.startswith("@"):
        if text.lower() in SHORTHANDS:
            return ""
        return f"unknown shorthand {text!r}; use one of " + ", ".join(sorted(SHORTHANDS))
    fields = text.split()
    if len(fields) != len(_FIELDS):
        return (
            f"{text!r} has {len(fields)} fields; a cron expression has 5: "
            "minute hour day-of-month month day-of-week (UTC)"
        )
    for value, (name, low, high, names) in zip(fields, _FIELDS, strict=True):
        problem = _field_problem(value, low, high, names)
        if problem:
            return f"{name} {value!r}: {problem}"
    return ""


def normalize_cron(expression: str) -> str:
    """A valid expression as Temporal gets it.

    Single spaces, names as numbers, lower-case shorthands: Temporal's parser never sees a
    spelling it might read differently.
    """
    text = expression.strip()
    if text.startswith("@"):
        return text.lower()
    fields = text.split()
    out: list[str] = []
    for value, (_name, _low, _high, names) in zip(fields, _FIELDS, strict=True):

        def number(match: re.Match[str], names: Mapping[str, int] = names) -> str:
            return str(names[match.group(0).upper()])

        out.append(re.sub(r"[A-Za-z]+", number, value))
    return " ".join(out)


def _field_problem(value: str, low: int, high: int, names: Mapping[str, int]) -> str:
    for item in value.split(","):
        match = _ITEM.match(item)
        if match is None:
            return f"{item!r} is not *, a value, a range a-b or either with /step"
        if match["step"] is not None:
            if int(match["step"]) < 1:
                return "a step must be at least 1"
            if match["range"] != "*" and "-" not in match["range"]:
                return f"{item!r}: a step needs * or a range before it (e.g. 5-59/15)"
        if match["range"] == "*":
            continue
        bounds: list[int] = []
        for part in match["range"].split("-"):
            number = names.get(part.upper()) if not part.isdigit() else int(part)
            if number is None:
                return f"{part!r} is not a number" + (
                    " or a name (" + ", ".join(names) + ")" if names else ""
                )
            if not low <= number <= high:
                return f"{number} is outside {low}..{high}"
            bounds.append(number)
        if len(bounds) == 2 and bounds[0] > bounds[1]:
            return f"the range {bounds[0]}-{bounds[1]} is empty"
    return ""


def schedule_problems(pointer: str, value: Any) -> list[Problem]:
    """Every problem of a document's `schedule` block at ``pointer`` (``/schedule``)."""
    if not isinstance(value, Mapping):
        return [Problem(pointer, "'schedule' must be an object")]
    problems: list[Problem] = []
    value = _on_key(value)
    for key in value:
        where = f"{pointer}/{escape(str(key))}"
        if key not in SCHEDULE_KEYS:
            problems.append(
                Problem(where, f"unknown property '{key}'; a schedule has every, cron, after or on")
            )
    present = [key for key in ("every", "cron", "after", "on") if key in value]
    if len(present) > 1:
        problems.append(
            Problem(
                f"{pointer}/{present[1]}",
                "a schedule has exactly one of every, cron, after and on (found "
                + ", ".join(present)
                + ")",
            )
        )
    elif not present:
        problems.append(Problem(pointer, "a schedule needs one of every, cron, after or on"))
    if "on" in value:
        problems.extend(on_problems(f"{pointer}/on", value["on"]))
    for key in ("every", "after"):
        if key not in value:
            continue
        try:
            seconds = parse_duration(value[key])
        except DurationError as exc:
            problems.append(Problem(f"{pointer}/{key}", str(exc)))
            continue
        if key == "every" and seconds < MIN_EVERY.total_seconds():
            problems.append(
                Problem(f"{pointer}/every", f"{seconds:g}s is shorter than the minimum, 1 second")
            )
        elif key == "every" and seconds != int(seconds):
            problems.append(
                Problem(f"{pointer}/every", f"{seconds:g}s is not a whole number of seconds")
            )
    if "cron" in value:
        cron = value["cron"]
        problem = cron_problem(cron) if isinstance(cron, str) else "'cron' must be a string"
        if problem:
            problems.append(Problem(f"{pointer}/cron", problem))
    return problems


def _on_key(value: Mapping[Any, Any]) -> dict[Any, Any]:
    # YAML 1.1 (PyYAML) reads an unquoted `on:` key as the boolean true.
    return {("on" if key is True else key): item for key, item in value.items()}


def _schedule_block(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The document's validated `schedule` (its `on` key read as such); None without one."""
    if "schedule" not in doc:
        return None
    problems = schedule_problems("/schedule", doc["schedule"])
    if problems:
        raise ValueError(f"{problems[0].pointer}: {problems[0].message}")
    block: Mapping[str, Any] = _on_key(doc["schedule"])
    return block


def event_trigger_of(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The `schedule.on` strategy of a valid document; None when it has none.

    Raises:
        ValueError: the schedule is invalid (validate the document first).
    """
    block = _schedule_block(doc)
    on: Mapping[str, Any] | None = None if block is None else block.get("on")
    return on


def schedule_of(doc: Mapping[str, Any]) -> WorkflowSchedule | None:
    """The parsed time-based `schedule` of a valid document; None when it has none.

    A schedule `on` events is not time-based: :func:`event_trigger_of` reads it.

    Raises:
        ValueError: the schedule is invalid (validate the document first).
    """
    block = _schedule_block(doc)
    if block is None or "on" in block:
        return None
    if "cron" in block:
        return WorkflowSchedule(cron=normalize_cron(str(block["cron"])))
    if "every" in block:
        return WorkflowSchedule(every=timedelta(seconds=parse_duration(block["every"])))
    return WorkflowSchedule(after=timedelta(seconds=parse_duration(block["after"])))
