"""The task-type registry: for every task type, how it is checked and how it runs.

A task type lives in one module of :mod:`polyfleet.dsl.tasks`, its validation beside its
execution, and :mod:`polyfleet.dsl.tasks` registers every type here; adding a task type (or a
function for `call:`) is one module there and one line in that package's registration.
Validation and the flow look types up here at run time, which is what keeps the task
modules (which use the checker and the flow) out of an import cycle with both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from polyfleet.dsl.checks import Checker
from polyfleet.dsl.model import UNSUPPORTED_TYPES
from polyfleet.dsl.runtime import Runtime, TaskCall


@dataclass(frozen=True)
class StepResult:
    """What an executor produced: the raw output, and a flow directive overriding `then`."""

    output: Any
    flow: str | None = None


#: Runs one validated task (its lifecycle around it is :func:`polyfleet.dsl.flow.run_task`'s).
Executor = Callable[[Runtime, TaskCall], Awaitable[StepResult]]
#: Records the problems of a task's own properties: (checker, task pointer, task, the
#: variables in scope, the names of its sibling tasks).
TypeCheck = Callable[[Checker, str, Mapping[str, Any], frozenset[str], Collection[str]], None]
#: Records the problems of a `call` function's `with`: (checker, pointer of `with`, the
#: arguments, the variables in scope).
ArgsCheck = Callable[[Checker, str, Mapping[str, Any], frozenset[str]], None]


@dataclass(frozen=True)
class TaskType:
    """One task type.

    Attributes:
        keyword: the property that names the type (`set`, `for`, ...).
        keys: the properties this type adds to the common ones, its keyword included.
        check: records the problems of a task's own properties.
        run: runs a validated task and produces its raw output.
        composite: the task holds other tasks and keeps resumable progress in its
            checkpoint frame.
    """

    keyword: str
    keys: frozenset[str]
    check: TypeCheck
    run: Executor
    composite: bool = False


@dataclass(frozen=True)
class CallFunction:
    """A function `call:` can name (`call: http`): checks its `with` and runs the call."""

    name: str
    check: ArgsCheck
    run: Executor


_TYPES: dict[str, TaskType] = {}
_CALLS: dict[str, CallFunction] = {}
_ORDER: tuple[str, ...] = ()


def register(*entries: TaskType | CallFunction) -> None:
    """Register task types and `call` functions.

    A task naming several types has the one registered first (validation reports the others
    as conflicting with it); a keyword that is also a property of another type (`do`, which
    `for` has) names its own type only when no other keyword is present.

    Args:
        entries: the task types and call functions, in that order of precedence.
    """
    global _ORDER
    for item in entries:
        if isinstance(item, TaskType):
            _TYPES[item.keyword] = item
        else:
            _CALLS[item.name] = item
    nested = {k for k in _TYPES if any(k in t.keys for t in _TYPES.values() if t.keyword != k)}
    _ORDER = (
        *(k for k in _TYPES if k not in nested),
        *UNSUPPORTED_TYPES,
        *(k for k in _TYPES if k in nested),
    )


def keywords() -> tuple[str, ...]:
    """The keywords of the registered task types, in alphabetical order."""
    return tuple(sorted(_TYPES))


def task_type(task: Mapping[str, Any]) -> str | None:
    """The type keyword of a task definition (possibly an unsupported one), or None."""
    for name in _ORDER:
        if name in task:
            return name
    return None


def type_of(task: Mapping[str, Any]) -> TaskType | None:
    """The registered type of a task definition; None when it has none this runtime runs."""
    keyword = task_type(task)
    return None if keyword is None else _TYPES.get(keyword)


def call_names() -> tuple[str, ...]:
    """The names `call:` accepts, in registration order."""
    return tuple(_CALLS)


def call_function(name: str) -> CallFunction | None:
    """The registered `call` function ``name``, or None."""
    return _CALLS.get(name)


def report_type(task: Mapping[str, Any]) -> str:
    """The type shown in task reports: `call:http`, `run:shell`, or the task type."""
    kind = task_type(task) or "unknown"
    if kind == "call":
        return f"call:{task.get('call')}"
    run = task.get("run")
    if kind == "run" and isinstance(run, Mapping):
        return next((f"run:{k}" for k in ("workflow", "shell", "script") if k in run), kind)
    return kind
