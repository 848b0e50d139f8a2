"""`use.functions`: named task definitions that `call: <name>` runs.

A function is any task definition (`use.functions.<name>`), checked once at its own pointer
(`/use/functions/<name>`). `call: <name>` runs it as a child task whose id is the calling
task's id followed by `/function/<name>`; its input is the call's `with` (evaluated against
the call's input; the call's input itself when there is no `with`) and its output is the
call's raw output. Built-in functions (`call: http`, ...) cannot be redefined, a function
chain may not loop back to itself, and catalog functions (`name:version@catalog`) and
`use.catalogs` are rejected (docs/dsl.md says why).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polyfleet.dsl.checks import Checker
from polyfleet.dsl.expressions import BASE_VARIABLES, escape
from polyfleet.dsl.flow import run_task
from polyfleet.dsl.registry import StepResult, call_function
from polyfleet.dsl.runtime import Runtime, Scope, TaskCall

_CATALOGS = (
    "catalog functions (name:version@catalog) are not supported by this runtime: "
    "define the function in use.functions instead"
)
_BY_URL = (
    "custom functions called by URL are not supported by this runtime: "
    "define the function in use.functions instead"
)
_ASYNCAPI = (
    "call: asyncapi is not supported by this runtime: it publishes to and consumes from "
    "message brokers (Kafka, AMQP, MQTT, ...) and no broker is assumed; use call: http, "
    "or emit/listen for events"
)


def functions(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The document's `use.functions` ({} when absent or malformed)."""
    use = doc.get("use")
    named = use.get("functions") if isinstance(use, Mapping) else None
    return named if isinstance(named, Mapping) else {}


def check_functions(c: Checker) -> None:
    """`use.functions`: a mapping of names to task definitions, none looping back to itself."""
    named = c.mapping("/use/functions", c.use["functions"], "'functions'")
    for name, task in (named or {}).items():
        pointer = f"/use/functions/{escape(str(name))}"
        if call_function(str(name)) is not None:
            c.add(
                pointer, f"'{name}' is a built-in function (call: {name}) and cannot be redefined"
            )
            continue
        c.task(pointer, task, frozenset(BASE_VARIABLES), ())
        if _loops(named or {}, str(name)):
            c.add(f"{pointer}/call", f"function '{name}' calls itself (directly or through others)")


def _loops(named: Mapping[str, Any], start: str) -> bool:
    seen: set[str] = set()
    current = start
    while True:
        task = named.get(current)
        target = task.get("call") if isinstance(task, Mapping) else None
        if not isinstance(target, str) or target not in named:
            return False
        if target == start:
            return True
        if target in seen:
            return False  # a loop not through `start`: reported at its own members
        seen.add(target)
        current = target


def check_function_call(
    c: Checker, p: str, name: str, task: Mapping[str, Any], variables: frozenset[str]
) -> bool:
    """A `call:` naming something other than a built-in: True when it is a known function."""
    if "://" in name:
        c.add(f"{p}/call", _BY_URL)
        return True
    if "@" in name:
        c.add(f"{p}/call", _CATALOGS)
        return True
    if name == "asyncapi":
        c.add(f"{p}/call", _ASYNCAPI)
        return True
    if name not in functions(c.doc):
        return False
    if "with" in task:
        args = c.mapping(f"{p}/with", task["with"], "'with'")
        if args is not None:
            c.template(f"{p}/with", args, variables)
    return True


async def call_defined(rt: Runtime, call: TaskCall) -> StepResult:
    """Run `use.functions.<name>` as a child task with the evaluated `with` as its input."""
    name = str(call.definition["call"])
    definition = functions(rt.doc)[name]
    data: Any = call.input
    if "with" in call.definition:
        data = rt.template(call.definition["with"], call.input, rt.variables(call, call.input))
    # The function sees only the workflow-wide variables, not the caller's loop variables.
    scope = Scope(attempt=call.scope.attempt)
    task_id = f"{call.id}/function/{escape(name)}"
    outcome = await run_task(rt, task_id, name, definition, data, scope)
    return StepResult(outcome.output)
