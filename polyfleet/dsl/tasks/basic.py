"""Leaf tasks that need nothing outside the engine: `set`, `wait`, `raise`, `switch`."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Any

from polyfleet.dsl.checks import Checker
from polyfleet.dsl.durations import parse_duration
from polyfleet.dsl.errors import ERROR_FIELDS, WorkflowError
from polyfleet.dsl.expressions import escape, is_expression
from polyfleet.dsl.registry import StepResult, TaskType
from polyfleet.dsl.runtime import Runtime, TaskCall, truthy

# -- set --------------------------------------------------------------------------------


def _check_set(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    value = task.get("set")
    if not (isinstance(value, Mapping) or is_expression(value)):
        c.add(f"{p}/set", "'set' must be an object or a `${ }` expression")
    c.template(f"{p}/set", value, variables)


async def run_set(rt: Runtime, call: TaskCall) -> StepResult:
    """Output the evaluated `set` value: it replaces the data (merge with `${ . + {...} }`)."""
    value = call.definition["set"]
    variables = rt.variables(call, call.input)
    if is_expression(value):
        return StepResult(rt.field(value, call.input, variables))
    return StepResult(rt.template(value, call.input, variables))


# -- wait -------------------------------------------------------------------------------


def _check_wait(
    c: Checker, p: str, task: Mapping[str, Any], _v: frozenset[str], _s: Collection[str]
) -> None:
    c.duration(f"{p}/wait", task.get("wait"))


async def run_wait(rt: Runtime, call: TaskCall) -> StepResult:
    """Sleep for the duration, then pass the input on."""
    await asyncio.sleep(parse_duration(call.definition["wait"]))
    return StepResult(call.input)


# -- raise ------------------------------------------------------------------------------


def _check_raise(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    block = c.members(f"{p}/raise", task.get("raise"), "'raise'", {"error"}, required=("error",))
    if block is None:
        return
    error = block.get("error")
    if isinstance(error, str):
        if error not in c.named("errors"):
            c.add(f"{p}/raise/error", f"unknown error '{error}' (not defined in use.errors)")
    elif "error" in block:
        check_error_object(c, f"{p}/raise/error", error, variables)


def check_error_object(c: Checker, p: str, value: Any, variables: frozenset[str]) -> None:
    """An RFC 7807 error definition, as `raise.error` or in `use.errors`."""
    error = c.members(p, value, "an error", ERROR_FIELDS, required=("type", "status"))
    if error is None:
        return
    if "type" in error:
        c.string(f"{p}/type", error["type"], "'type'")
    status = error.get("status")
    if "status" in error and not (
        is_expression(status) or (isinstance(status, int) and not isinstance(status, bool))
    ):
        c.add(f"{p}/status", "'status' must be an integer")
    c.template(p, {k: v for k, v in error.items() if k in ERROR_FIELDS}, variables)


async def run_raise(rt: Runtime, call: TaskCall) -> StepResult:
    """Raise the (inline or `use.errors`) error, its `${ }` fields evaluated."""
    definition: Mapping[str, Any] = rt.named("errors", call.definition["raise"]["error"])
    error = rt.template(dict(definition), call.input, rt.variables(call, call.input))
    raise WorkflowError(
        type=str(error["type"]),
        status=_status(error.get("status")),
        title=str(error.get("title") or ""),
        detail=str(error.get("detail") or ""),
        instance=str(error.get("instance") or call.id),
    )


def _status(value: Any) -> int | None:
    """An error status from a literal or an evaluated expression."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return None


# -- switch -----------------------------------------------------------------------------


def _check_switch(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], sib: Collection[str]
) -> None:
    cases = task.get("switch")
    if not isinstance(cases, list) or not cases:
        c.add(f"{p}/switch", "must be a non-empty list of cases")
        return
    defaults = 0
    for index, item in enumerate(cases):
        if not isinstance(item, Mapping) or len(item) != 1:
            c.add(f"{p}/switch/{index}", "a case must map one case name to {when, then}")
            continue
        ((name, case),) = item.items()
        cp = f"{p}/switch/{index}/{escape(str(name))}"
        body = c.members(cp, case, "a switch case", {"when", "then"}, required=("then",))
        if body is None:
            continue
        if "when" in body:
            c.expression(f"{cp}/when", body["when"], variables)
        else:
            defaults += 1
            if defaults == 2:
                c.add(cp, "a switch has at most one default case (a case without 'when')")
        if "then" in body:
            c.directive(f"{cp}/then", body["then"], sib)


async def run_switch(rt: Runtime, call: TaskCall) -> StepResult:
    """Pass the input on with the `then` of the first matching case (or the default case)."""
    variables = rt.variables(call, call.input)
    default: str | None = None
    for item in call.definition["switch"]:
        ((_name, case),) = item.items()
        if "when" not in case:
            default = case["then"]
        elif truthy(rt.field(case["when"], call.input, variables)):
            return StepResult(call.input, case["then"])
    return StepResult(call.input, default)


SET = TaskType("set", frozenset({"set"}), _check_set, run_set)
WAIT = TaskType("wait", frozenset({"wait"}), _check_wait, run_wait)
RAISE = TaskType("raise", frozenset({"raise"}), _check_raise, run_raise)
SWITCH = TaskType("switch", frozenset({"switch"}), _check_switch, run_switch)
