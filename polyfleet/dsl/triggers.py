"""`schedule.on`: the events that start a workflow execution — checks and matching.

`schedule: {on: STRATEGY}` makes the host start one execution each time STRATEGY is
satisfied by the events it follows (the orchestrator: ``orchestrator/event_schedules.py``).
STRATEGY is an event consumption strategy as in `listen.to`, without what needs a running
execution: `one: F`, `any: [F, ...]` (an empty list: every event) or `all: [F, ...]`; `until`
and `correlate` are rejected at apply time. A filter F is `{with: {attribute: value}}`: every
attribute given must equal the event's (a `${ }` expression is evaluated without input or
`$` variables); `data` may be an object (every member given must be equal, recursively) or a
`${ }` expression evaluated with the event's data as `.`, which must be true — the matching of
`listen` (``tasks/events.py``).

`one` and `any` are met by one matching event; `all` when each filter has matched one event
(each event is consumed by at most one filter, the first unmatched one it passes). The
consumed events, in consumption order, are the execution's input. The partial matches of
`all` are a JSON-able state the host keeps (:meth:`EventTrigger.feed` updates it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from polyfleet.dsl import expressions
from polyfleet.dsl.errors import Problem
from polyfleet.dsl.expressions import ExpressionError, is_expression

#: The CloudEvents context attributes a filter may name, besides extensions and `data`.
ATTRIBUTES = frozenset(
    {"id", "source", "type", "specversion", "time", "subject", "datacontenttype", "dataschema"}
)
_EXTENSION = re.compile(r"^[a-z0-9]{1,20}$")
KINDS = ("one", "all", "any")


def on_problems(pointer: str, value: Any) -> list[Problem]:
    """Every problem of a `schedule.on` strategy at ``pointer`` (``/schedule/on``)."""
    if not isinstance(value, Mapping):
        return [Problem(pointer, "'on' must be an event consumption strategy (one, all or any)")]
    problems: list[Problem] = []
    for key in value:
        if key == "until":
            problems.append(
                Problem(
                    f"{pointer}/until",
                    "'until' is not supported in 'schedule.on': each time the strategy is met "
                    "one execution starts",
                )
            )
        elif key not in KINDS:
            problems.append(
                Problem(f"{pointer}/{key}", f"unknown property '{key}'; use one, all or any")
            )
    kinds = [kind for kind in KINDS if kind in value]
    if len(kinds) != 1:
        problems.append(Problem(pointer, "exactly one of 'one', 'all' or 'any' is required"))
        return problems
    kind = kinds[0]
    if kind == "one":
        problems.extend(_filter_problems(f"{pointer}/one", value["one"]))
        return problems
    filters = value[kind]
    if not isinstance(filters, list) or (kind == "all" and not filters):
        what = "a non-empty list" if kind == "all" else "a list"
        problems.append(Problem(f"{pointer}/{kind}", f"'{kind}' must be {what} of event filters"))
        return problems
    for index, f in enumerate(filters):
        problems.extend(_filter_problems(f"{pointer}/{kind}/{index}", f))
    return problems


def _filter_problems(pointer: str, value: Any) -> list[Problem]:
    if not isinstance(value, Mapping):
        return [Problem(pointer, "an event filter must be an object")]
    problems: list[Problem] = []
    for key in value:
        if key == "correlate":
            problems.append(
                Problem(
                    f"{pointer}/correlate",
                    "'correlate' is not supported in 'schedule.on'; filter on attributes and "
                    "data, or correlate in a `listen` task",
                )
            )
        elif key != "with":
            problems.append(Problem(f"{pointer}/{key}", f"unknown property '{key}'; use 'with'"))
    if "with" not in value:
        return problems
    props = value["with"]
    if not isinstance(props, Mapping):
        problems.append(Problem(f"{pointer}/with", "'with' must be an object"))
        return problems
    for key, expected in props.items():
        where = f"{pointer}/with/{expressions.escape(str(key))}"
        if key != "data" and key not in ATTRIBUTES and not _EXTENSION.match(str(key)):
            problems.append(
                Problem(where, f"'{key}' is not a CloudEvents attribute (extensions: a-z0-9, ≤ 20)")
            )
            continue
        if key != "data" and not isinstance(expected, str):
            problems.append(Problem(where, f"'{key}' must be a string or a `${{ }}` expression"))
            continue
        for at, text in expressions.iter_template_expressions(expected, where):
            problem = expressions.check(text, ())
            if problem:
                problems.append(Problem(at, f"{problem} (no $ variables in 'schedule.on')"))
    return problems


def _contains(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` has every member of ``expected`` (objects recursively)."""
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual and _contains(actual[key], value) for key, value in expected.items()
        )
    return bool(actual == expected)


def _truthy(value: Any) -> bool:
    return value is not None and value is not False


def filter_matches(f: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether ``event`` (a CloudEvent as data) passes filter ``f``.

    An expression that fails to evaluate is no match.
    """
    try:
        for key, expected in (f.get("with") or {}).items():
            if key == "data":
                if is_expression(expected):
                    text = expressions.expression_text(expected)
                    if not _truthy(expressions.evaluate(text, event.get("data"), {})):
                        return False
                elif not _contains(event.get("data"), expected):
                    return False
            elif event.get(key) != expressions.evaluate_template(expected, None, {}):
                return False
    except ExpressionError:
        return False
    return True


class EventTrigger:
    """The `schedule.on` strategy of one workflow, fed one event at a time.

    Args:
        strategy: The validated `on` block.
    """

    def __init__(self, strategy: Mapping[str, Any]) -> None:
        self.strategy = strategy
        self.kind = next(kind for kind in KINDS if kind in strategy)
        block = strategy[self.kind]
        self.filters: list[Mapping[str, Any]] = [block] if self.kind == "one" else list(block)

    def feed(
        self, state: dict[str, Any], event: Mapping[str, Any], sequence: int
    ) -> list[tuple[int, dict[str, Any]]] | None:
        """Feed one event (with its stream sequence); the consumed events when the strategy is met.

        Args:
            state: This trigger's partial matches (JSON-able; ``{}`` at first), updated in
                place: ``pending`` lists ``[filter index, sequence, event]`` consumed by `all`.
            event: The CloudEvent as data (attributes, extensions, `data`).
            sequence: Its sequence in the event stream.

        Returns:
            ``(sequence, event)`` of every consumed event, in consumption order, when this
            event met the strategy (the state is then reset); None otherwise.
        """
        if self.kind == "any" and not self.filters:
            return [(sequence, dict(event))]
        if self.kind != "all":
            if any(filter_matches(f, event) for f in self.filters):
                return [(sequence, dict(event))]
            return None
        pending: list[list[Any]] = state.setdefault("pending", [])
        taken = {int(entry[0]) for entry in pending}
        for index, f in enumerate(self.filters):
            if index in taken or not filter_matches(f, event):
                continue
            pending.append([index, sequence, dict(event)])
            if len(pending) < len(self.filters):
                return None
            consumed = [(int(entry[1]), entry[2]) for entry in pending]
            state.clear()
            return consumed
        return None
