"""`call`: run a function named by `call:` with the arguments in `with`.

The functions themselves (`call: http`, `call: agent`) are registered beside this type as
:class:`~polyfleet.dsl.registry.CallFunction`s, each in its own module.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from polyfleet.dsl.checks import Checker
from polyfleet.dsl.registry import StepResult, TaskType, call_function, call_names
from polyfleet.dsl.runtime import Runtime, TaskCall
from polyfleet.dsl.tasks.functions import call_defined, check_function_call


def _check(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    function = task.get("call")
    if not isinstance(function, str):
        c.add(f"{p}/call", "'call' must name a function")
        return
    called = call_function(function)
    if called is None:
        if check_function_call(c, p, function, task, variables):
            return
        supported = ", ".join(f"call: {name}" for name in call_names())
        c.add(
            f"{p}/call",
            f"unsupported call '{function}': this runtime supports {supported} "
            "and the functions defined in use.functions",
        )
        return
    if "with" not in task:
        c.add(f"{p}/with", "missing required property 'with'")
        return
    args = c.mapping(f"{p}/with", task["with"], "'with'")
    if args is not None:
        called.check(c, f"{p}/with", args, variables)


async def _run(rt: Runtime, call: TaskCall) -> StepResult:
    called = call_function(str(call.definition["call"]))
    if called is None:  # validation admits registered functions and use.functions only
        return await call_defined(rt, call)
    return await called.run(rt, call)


CALL = TaskType("call", frozenset({"call", "with"}), _check, _run)
