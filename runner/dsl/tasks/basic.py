"""Leaf tasks that need nothing outside the engine: `set`, `wait`, `raise`, `switch`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from runner.dsl.durations import parse_duration
from runner.dsl.errors import WorkflowError
from runner.dsl.expressions import is_expression
from runner.dsl.flow import StepResult, executor
from runner.dsl.runtime import Runtime, TaskCall, truthy


@executor("set")
async def run_set(rt: Runtime, call: TaskCall) -> StepResult:
    """Output the evaluated `set` value: it replaces the data (merge with `${ . + {...} }`)."""
    value = call.definition["set"]
    variables = rt.variables(call, call.input)
    if is_expression(value):
        return StepResult(rt.field(value, call.input, variables))
    return StepResult(rt.template(value, call.input, variables))


@executor("wait")
async def run_wait(rt: Runtime, call: TaskCall) -> StepResult:
    """Sleep for the duration, then pass the input on."""
    await asyncio.sleep(parse_duration(call.definition["wait"]))
    return StepResult(call.input)


@executor("raise")
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


@executor("switch")
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
