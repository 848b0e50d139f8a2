"""`use.functions`, catalog functions and functions by URL: task definitions `call:` runs.

A function is any task definition (`use.functions.<name>`), checked once at its own pointer
(`/use/functions/<name>`). `call: <name>` runs it as a child task whose id is the calling
task's id followed by `/function/<name>`; its input is the call's `with` (evaluated against
the call's input; the call's input itself when there is no `with`) and its output is the
call's raw output. Built-in functions (`call: http`, ...) cannot be redefined and a function
chain may not loop back to itself.

A catalog function (`call: name:version@catalog`, `use.catalogs`) or a function by URL
(`call: https://.../function.yaml`) runs the same way, its reference being its name: its
definition comes from the host (the checker's and the runtime's ``resolved_functions``),
which the orchestrator fetched when the workflow was applied (:mod:`polyfleet.dsl.catalogs`).
A fetched definition is checked as a task; problems in it are reported at the pointer of
the first `call` of it, and it may not call another catalog or URL function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polyfleet.dsl.catalogs import FunctionReferenceError, check_url, function_url, is_external
from polyfleet.dsl.checks import Checker
from polyfleet.dsl.errors import Problem
from polyfleet.dsl.expressions import BASE_VARIABLES, escape
from polyfleet.dsl.flow import run_task
from polyfleet.dsl.registry import StepResult, call_function
from polyfleet.dsl.runtime import Runtime, Scope, TaskCall

_UNRESOLVED = (
    "the function '{ref}' was not resolved when the workflow was applied: apply the workflow "
    "again through the API, which fetches catalog and URL functions"
)
_NESTED = "'{ref}': a catalog or URL function may not call another catalog or URL function"
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
    if is_external(name):
        _check_external(c, p, name)
        _check_with(c, p, task, variables)
        return True
    if name == "asyncapi":
        c.add(f"{p}/call", _ASYNCAPI)
        return True
    if name not in functions(c.doc):
        return False
    _check_with(c, p, task, variables)
    return True


def _check_with(c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str]) -> None:
    if "with" in task:
        args = c.mapping(f"{p}/with", task["with"], "'with'")
        if args is not None:
            c.template(f"{p}/with", args, variables)


def _check_external(c: Checker, p: str, ref: str) -> None:
    """A catalog or URL reference: its syntax and catalog; its definition when resolved."""
    pointer = f"{p}/call"
    if p.startswith(_FUNCTION_POINTER):
        c.add(pointer, _NESTED.format(ref=ref))
        return
    try:
        function_url(c.doc, ref)
    except FunctionReferenceError as exc:
        c.add(pointer, str(exc))
        return
    first = ref not in c.function_references
    c.function_references.setdefault(ref, pointer)
    if c.resolved_functions is None or not first:
        return
    definition = c.resolved_functions.get(ref)
    if definition is None:
        c.add(pointer, _UNRESOLVED.format(ref=ref))
        return
    # Checked once, as a task of its own; its problems are reported at the first call.
    before = len(c.problems)
    c.task(_FUNCTION_POINTER, definition, frozenset(BASE_VARIABLES), ())
    found = c.problems[before:]
    del c.problems[before:]
    for problem in found:
        inner = problem.pointer.removeprefix(_FUNCTION_POINTER) or "/"
        c.problems.append(
            Problem(pointer, f"the function '{ref}' is not valid: at {inner}: {problem.message}")
        )
    # What the function needs of the runner is needed by the task that calls it.
    for pointers in c.requirements.values():
        pointers[:] = [pointer if q.startswith(_FUNCTION_POINTER) else q for q in pointers]


# Where a fetched definition is checked (a pointer no document has), so that problems
# inside it can be told apart and moved to the calling task.
_FUNCTION_POINTER = "/~function"


def check_catalogs(c: Checker) -> None:
    """`use.catalogs`: names mapped to `{endpoint: URI | {uri}}`, http(s) only."""
    named = c.mapping("/use/catalogs", c.use["catalogs"], "'catalogs'")
    for name, catalog in (named or {}).items():
        pointer = f"/use/catalogs/{escape(str(name))}"
        block = c.members(pointer, catalog, "a catalog", {"endpoint"}, required=("endpoint",))
        if block is None or "endpoint" not in block:
            continue
        endpoint = block["endpoint"]
        where = f"{pointer}/endpoint"
        if isinstance(endpoint, Mapping):
            c.keys(where, endpoint, {"uri"}, required=("uri",), unsupported={"authentication"})
            if "uri" not in endpoint:
                continue
            endpoint = endpoint["uri"]
            where = f"{where}/uri"
        if not c.string(where, endpoint, "a catalog endpoint"):
            continue
        try:
            check_url(str(endpoint))
        except FunctionReferenceError as exc:
            c.add(where, str(exc))


async def call_defined(rt: Runtime, call: TaskCall) -> StepResult:
    """Run `use.functions.<name>` as a child task with the evaluated `with` as its input."""
    name = str(call.definition["call"])
    definition = rt.resolved_functions.get(name) or functions(rt.doc)[name]
    data: Any = call.input
    if "with" in call.definition:
        data = rt.template(call.definition["with"], call.input, rt.variables(call, call.input))
    # The function sees only the workflow-wide variables, not the caller's loop variables.
    scope = Scope(attempt=call.scope.attempt)
    task_id = f"{call.id}/function/{escape(name)}"
    outcome = await run_task(rt, task_id, name, definition, data, scope)
    return StepResult(outcome.output)
