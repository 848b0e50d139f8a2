"""`emit` and `listen`: CloudEvents published and consumed through the host.

`emit: {event: {with: {type, source?, id?, subject?, time?, datacontenttype?, dataschema?,
data?, <extension>?}}}` evaluates the `${ }` expressions of `with` against the task input and
hands the event to ``hooks.emit_event`` with the task id and attempt (the host derives a
missing `id` from them, so a retried activity publishes once; a `try` retry publishes
again). The task's output is its input.

`listen: {to: {one: F} | {all: [F, ...]} | {any: [F, ...], until?}, read?}` consumes the
events the host hands out (``hooks.receive_events``: those published after the execution
was created, in publish order) until the strategy is satisfied, and outputs the consumed
events as an array in the `read` mode: `data` (default: each event's data), `envelope`
(the whole event: attributes, extensions and data) or `raw` (the data as published: JSON
text unless it is a string). A filter F is `{with: {attribute: value}, correlate?}`:

- `with`: every attribute given must match. A literal must be equal; a `${ }` expression
  is evaluated against the task input and the result must be equal; `data` may be an object
  (every member given must be equal, recursively) or a `${ }` expression evaluated with the
  event's data as `.`, which must be true.
- `correlate: {key: {from: EXPR, expect?: EXPR}}`: `from` is evaluated with the event as `.`;
  with `expect` (evaluated against the task input when the listen starts) it must equal it;
  without, the first event that matches fixes the key's value for every later event
  of the strategy (correlation keys are shared by its filters).

`one` ends with the first matching event; `all` when each filter has matched one event
(each event is consumed by at most one filter); `any` (an empty list matches every event)
ends after the first matching event unless `until` is given: an expression evaluated after
each consumed event with the consumed events (in the `read` mode) as `.` — true ends it,
`false` never does (only the task or workflow timeout) — or a strategy (`one`/`all`/`any`)
whose events end it (they are not consumed).

The listen's progress (the read position, what is consumed, correlation values) is its
checkpoint frame, checkpointed after every batch that consumed an event: a resumed listen
re-reads from its last checkpoint and consumes the same events again in the same order,
never one twice and never a lost one. `foreach` (processing a stream of events) is not
supported and rejected at validation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any

from polyfleet.dsl.checks import Checker
from polyfleet.dsl.errors import EXPRESSION, WorkflowError
from polyfleet.dsl.expressions import is_expression
from polyfleet.dsl.registry import StepResult, TaskType
from polyfleet.dsl.runtime import Runtime, TaskCall, truthy

#: The CloudEvents context attributes a `with` may set, besides extensions and `data`.
ATTRIBUTES = (
    "id",
    "source",
    "type",
    "specversion",
    "time",
    "subject",
    "datacontenttype",
    "dataschema",
)
_EXTENSION = re.compile(r"^[a-z0-9]{1,20}$")
READ_MODES = ("data", "envelope", "raw")
#: Seconds one ``receive_events`` call may wait; the host keeps heartbeating meanwhile.
POLL_SECONDS = 5.0

# -- emit -------------------------------------------------------------------------------


def _check_attributes(
    c: Checker, p: str, props: Mapping[str, Any], variables: frozenset[str]
) -> None:
    for key, value in props.items():
        where = f"{p}/{key}"
        if key == "data":
            c.template(where, value, variables)
        elif key in ATTRIBUTES or _EXTENSION.match(str(key)):
            if not isinstance(value, str):
                c.add(where, f"'{key}' must be a string or a `${{ }}` expression")
            else:
                c.template(where, value, variables)
        else:
            c.add(where, f"'{key}' is not a CloudEvents attribute (extensions: a-z0-9, ≤ 20)")


def _check_emit(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    block = c.members(f"{p}/emit", task.get("emit"), "'emit'", {"event"}, required=("event",))
    if block is None:
        return
    event = c.members(f"{p}/emit/event", block.get("event"), "'event'", {"with"}, ("with",))
    if event is None or "with" not in event:
        return
    props = c.mapping(f"{p}/emit/event/with", event["with"], "'with'")
    if props is None:
        return
    if "type" not in props:
        c.add(f"{p}/emit/event/with/type", "missing required property 'type'")
    _check_attributes(c, f"{p}/emit/event/with", props, variables)


async def run_emit(rt: Runtime, call: TaskCall) -> StepResult:
    """Publish the event through the host; the output is the task's input."""
    props = call.definition["emit"]["event"]["with"]
    event = rt.template(props, call.input, rt.variables(call, call.input))
    for key in event:
        if key != "data" and not isinstance(event[key], str):
            raise WorkflowError(
                EXPRESSION,
                400,
                title="Invalid event",
                detail=f"event attribute '{key}' must be a string, not {type(event[key]).__name__}",
            )
    if not event.get("type"):
        raise WorkflowError(
            EXPRESSION, 400, title="Invalid event", detail="event attribute 'type' is empty"
        )
    # Secret values never leave in an event: they are redacted like reports.
    await rt.hooks.emit_event(rt.redactor.data(event), call.id, call.attempts)
    return StepResult(call.input)


# -- listen -----------------------------------------------------------------------------


def _check_filter(c: Checker, p: str, value: Any, variables: frozenset[str]) -> None:
    f = c.members(p, value, "an event filter", {"with", "correlate"})
    if f is None:
        return
    if "with" in f:
        props = c.mapping(f"{p}/with", f["with"], "'with'")
        if props is not None:
            _check_attributes(c, f"{p}/with", props, variables)
    if "correlate" in f:
        keys = c.mapping(f"{p}/correlate", f["correlate"], "'correlate'")
        for key, rule in (keys or {}).items():
            where = f"{p}/correlate/{key}"
            r = c.members(where, rule, "a correlation", {"from", "expect"}, required=("from",))
            if r is None:
                continue
            if "from" in r:
                c.expression(f"{where}/from", r["from"], variables)
            if "expect" in r:
                c.template(f"{where}/expect", r["expect"], variables)


def _check_strategy(
    c: Checker, p: str, value: Any, variables: frozenset[str], *, nested: bool = False
) -> None:
    allowed = {"one", "all", "any"} if nested else {"one", "all", "any", "until"}
    to = c.members(p, value, "an event consumption strategy", allowed)
    if to is None:
        return
    kinds = [k for k in ("one", "all", "any") if k in to]
    if len(kinds) != 1:
        c.add(p, "exactly one of 'one', 'all' or 'any' is required")
        return
    kind = kinds[0]
    if kind == "one":
        _check_filter(c, f"{p}/one", to["one"], variables)
    else:
        filters = to[kind]
        if not isinstance(filters, list) or (kind == "all" and not filters):
            what = "a non-empty list" if kind == "all" else "a list"
            c.add(f"{p}/{kind}", f"'{kind}' must be {what} of event filters")
        else:
            for index, f in enumerate(filters):
                _check_filter(c, f"{p}/{kind}/{index}", f, variables)
    if "until" in to:
        until = to["until"]
        if kind != "any":
            c.add(f"{p}/until", "'until' applies to 'any' only")
        elif until is False:
            pass
        elif isinstance(until, str):
            c.expression(f"{p}/until", until, variables)
        else:
            _check_strategy(c, f"{p}/until", until, variables, nested=True)


def _check_listen(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    block = c.members(f"{p}/listen", task.get("listen"), "'listen'", {"to", "read"}, ("to",))
    if "foreach" in task:
        c.add(f"{p}/foreach", "'foreach' over listened events is not supported")
    if block is None:
        return
    if "to" in block:
        _check_strategy(c, f"{p}/listen/to", block["to"], variables)
    if "read" in block and block["read"] not in READ_MODES:
        c.add(f"{p}/listen/read", f"'read' must be one of {', '.join(READ_MODES)}")


def _contains(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` has every member of ``expected`` (objects recursively)."""
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual and _contains(actual[key], value) for key, value in expected.items()
        )
    return bool(actual == expected)


class _Listener:
    """Matches events against one listen task's strategy; its state is the task's frame."""

    def __init__(self, rt: Runtime, call: TaskCall) -> None:
        self.rt = rt
        self.call = call
        self.frame = call.frame
        self.variables = rt.variables(call, call.input)
        self.read = call.definition["listen"].get("read", "data")

    def matches(self, f: Mapping[str, Any], event: Mapping[str, Any], where: str) -> bool:
        """Whether ``event`` passes filter ``f``; fixes new correlation values if so.

        Correlation values are shared by the filters of one strategy (``where``).
        """
        for key, expected in (f.get("with") or {}).items():
            if key == "data":
                if is_expression(expected):
                    value = self.rt.field(expected, event.get("data"), self.variables)
                    if not truthy(value):
                        return False
                elif not _contains(event.get("data"), expected):
                    return False
            else:
                wanted = self.rt.template(expected, self.call.input, self.variables)
                if event.get(key) != wanted:
                    return False
        fixed: dict[str, Any] = self.frame.setdefault("correlation", {}).setdefault(where, {})
        found: dict[str, Any] = {}
        for key, rule in (f.get("correlate") or {}).items():
            value = self.rt.field(rule["from"], dict(event), self.variables)
            if key in fixed and fixed[key] != value:
                return False
            found[key] = value
        fixed.update(found)
        return True

    def start(self, to: Mapping[str, Any], where: str) -> None:
        """Fix the `expect`ed correlation values of the strategy's filters."""
        for f in _filters(to):
            for key, rule in (f.get("correlate") or {}).items():
                if "expect" in rule:
                    value = self.rt.template(rule["expect"], self.call.input, self.variables)
                    self.frame.setdefault("correlation", {}).setdefault(where, {})[key] = value

    def feed(
        self, to: Mapping[str, Any], where: str, event: Mapping[str, Any]
    ) -> tuple[bool, bool]:
        """Feed ``event`` to strategy ``to`` (state under ``where``).

        Returns:
            Whether the event matched (is consumed), and whether the strategy is now met.

        """
        if "any" in to and not to["any"]:
            return True, True
        done: list[int] = self.frame.setdefault("matched", {}).setdefault(where, [])
        for index, f in enumerate(_filters(to)):
            if index in done or not self.matches(f, event, where):
                continue
            if "all" not in to:
                return True, True
            done.append(index)
            return True, len(done) == len(to["all"])
        return False, False

    def shown(self, event: Mapping[str, Any]) -> Any:
        if self.read == "envelope":
            return dict(event)
        data = event.get("data")
        if self.read == "raw" and not isinstance(data, str):
            return json.dumps(data, separators=(",", ":"))
        return data


def _filters(to: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if "one" in to:
        return [to["one"]]
    filters: list[Mapping[str, Any]] = to["all" if "all" in to else "any"]
    return filters


async def run_listen(rt: Runtime, call: TaskCall) -> StepResult:
    """Consume events until the strategy is met; output them in the `read` mode."""
    to: Mapping[str, Any] = call.definition["listen"]["to"]
    listener = _Listener(rt, call)
    frame = call.frame
    if "after" not in frame:
        frame.update(after=0, consumed=[], done=False)
        listener.start(to, "to")
        if isinstance(to.get("until"), Mapping):
            listener.start(to["until"], "until")
    until = to.get("until")
    while not frame["done"]:
        batch = await rt.hooks.receive_events(frame["after"], POLL_SECONDS)
        changed = False
        for event in batch.events:
            if isinstance(until, Mapping):
                matched, met = listener.feed(until, "until", event)
                changed = changed or matched
                if met:
                    frame["done"] = True
                    break
                if matched:
                    continue  # an `until` event is not consumed
            matched, met = listener.feed(to, "to", event)
            if not matched:
                continue
            frame["consumed"].append(listener.shown(event))
            changed = True
            if "any" in to and until is not None:
                if isinstance(until, str) and truthy(
                    rt.field(until, frame["consumed"], listener.variables)
                ):
                    frame["done"] = True
                    break
                continue
            if met:
                frame["done"] = True
                break
        frame["after"] = batch.last
        if changed:
            # The frame (read position, consumed events, correlations) resumes from here.
            await rt.checkpoint()
    return StepResult(list(frame["consumed"]))


EMIT = TaskType("emit", frozenset({"emit"}), _check_emit, run_emit)
LISTEN = TaskType(
    "listen", frozenset({"listen", "foreach"}), _check_listen, run_listen, composite=True
)
