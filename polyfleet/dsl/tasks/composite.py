"""Composite tasks that run task lists in sequence: `do` and `for`.

A `for` iteration's tasks get ids qualified by the iteration: the body task at
``/do/1/loop/do/0/step`` reports as ``/do/1/loop/for/<index>/do/0/step``; dropping the
``/for/<index>`` segments gives back the task's JSON pointer in the document.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from polyfleet.dsl.checks import Checker
from polyfleet.dsl.errors import EXPRESSION, WorkflowError
from polyfleet.dsl.expressions import IDENTIFIER, mentions
from polyfleet.dsl.flow import run_sequence
from polyfleet.dsl.registry import StepResult, TaskType
from polyfleet.dsl.runtime import Runtime, TaskCall, truthy


def _check_do(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    c.task_list(f"{p}/do", task.get("do"), variables)


async def run_do(rt: Runtime, call: TaskCall) -> StepResult:
    """Run the subtasks in sequence; the output is the last one's."""
    seq = call.frame.setdefault("seq", {"next": 0, "data": call.input})
    outcome = await run_sequence(rt, f"{call.id}/do", call.definition["do"], seq, call.scope)
    return StepResult(outcome.output, "end" if outcome.ended else None)


def _check_for(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    loop = c.members(f"{p}/for", task.get("for"), "'for'", {"each", "in", "at"}, required=("in",))
    names = {"item", "index"}
    if loop is not None:
        for key, default in (("each", "item"), ("at", "index")):
            name = loop.get(key, default)
            if not isinstance(name, str) or not IDENTIFIER.match(name):
                c.add(f"{p}/for/{key}", f"'{key}' must be a variable name such as '{default}'")
            else:
                names.discard(default)
                names.add(name)
        if "in" in loop:
            c.expression(f"{p}/for/in", loop["in"], variables)
    inner = variables | names
    if "while" in task:
        c.expression(f"{p}/while", task["while"], inner)
    if "do" not in task:
        c.add(f"{p}/do", "missing required property 'do'")
    else:
        c.task_list(f"{p}/do", task["do"], inner)


async def run_for(rt: Runtime, call: TaskCall) -> StepResult:
    """Run `do` once per item of `for.in`; each iteration's output feeds the next.

    `while` is checked before each iteration, with `$item`/`$index` already bound, over
    the data the iteration would receive; false stops the loop. The output is the data
    after the last iteration (the task's input when there was none).
    """
    loop = call.definition["for"]
    each, at = loop.get("each", "item"), loop.get("at", "index")
    frame = call.frame
    if "items" in frame:
        items: list[Any] = frame["items"]
    else:
        items = _as_list(rt.field(loop["in"], call.input, rt.variables(call, call.input)))
        frame.setdefault("index", 0)
        frame.setdefault("data", call.input)
        # Only `$context` changes while a workflow runs: otherwise the items can be
        # evaluated again on resume, and checkpoints need not carry the collection.
        if mentions(loop["in"], "context"):
            frame["items"] = items
    while frame["index"] < len(items):
        index = frame["index"]
        scope = call.scope.with_variables(**{each: items[index], at: index})
        # An iteration already under way when the checkpoint was taken passed `while`.
        if "seq" not in frame and "while" in call.definition:
            variables = rt.variables(call, call.input, **scope.variables)
            if not truthy(rt.field(call.definition["while"], frame["data"], variables)):
                break
        seq = frame.setdefault("seq", {"next": 0, "data": frame["data"]})
        list_id = f"{call.id}/for/{index}/do"
        outcome = await run_sequence(rt, list_id, call.definition["do"], seq, scope)
        frame["data"], frame["index"] = outcome.output, index + 1
        del frame["seq"]
        if outcome.ended:
            return StepResult(outcome.output, "end")
    return StepResult(frame["data"])


def _as_list(items: Any) -> list[Any]:
    if items is None:
        return []
    if isinstance(items, list):
        return items
    raise WorkflowError(
        EXPRESSION,
        400,
        title="Invalid for.in",
        detail=f"for.in must produce an array, not {type(items).__name__}",
    )


DO = TaskType("do", frozenset({"do"}), _check_do, run_do, composite=True)
FOR = TaskType("for", frozenset({"for", "while", "do"}), _check_for, run_for, composite=True)
