"""Shape of a workflow document: task types, task lists and the properties each task may have."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Task types the engine runs; `call` covers `call: http` and `call: agent`.
TASK_TYPES = ("call", "do", "for", "fork", "raise", "set", "switch", "try", "wait")
#: Task types of the DSL that this runtime does not run (rejected by validation).
UNSUPPORTED_TYPES = ("emit", "listen", "run")
#: Task types that hold other tasks and keep resumable progress in a checkpoint frame.
COMPOSITE_TYPES = frozenset({"do", "for", "fork", "try"})
#: Properties every task may have.
COMMON_KEYS = frozenset({"if", "input", "output", "export", "timeout", "then", "metadata"})
#: Properties each task type adds.
TYPE_KEYS: Mapping[str, frozenset[str]] = {
    "call": frozenset({"call", "with"}),
    "do": frozenset({"do"}),
    "for": frozenset({"for", "while", "do"}),
    "fork": frozenset({"fork"}),
    "raise": frozenset({"raise"}),
    "set": frozenset({"set"}),
    "switch": frozenset({"switch"}),
    "try": frozenset({"try", "catch"}),
    "wait": frozenset({"wait"}),
}
#: Flow directives other than the name of a sibling task.
DIRECTIVES = ("continue", "exit", "end")

# `for` and `try` tasks also carry `do`/`catch`, so the keyword that names the type is
# looked up first, and a plain `do` last.
_TYPE_ORDER = ("for", "fork", "try", "call", "set", "switch", "wait", "raise", *UNSUPPORTED_TYPES)


def task_type(task: Mapping[str, Any]) -> str | None:
    """The type of a task definition, or None when it has no type keyword."""
    for name in _TYPE_ORDER:
        if name in task:
            return name
    return "do" if "do" in task else None


def report_type(task: Mapping[str, Any]) -> str:
    """The type shown in task reports: the task type, with the function for calls."""
    kind = task_type(task) or "unknown"
    if kind == "call":
        return f"call:{task.get('call')}"
    return kind


def entry(item: Any) -> tuple[str, Mapping[str, Any]]:
    """Name and definition of one item of a task list (a single-key mapping)."""
    if not isinstance(item, Mapping) or len(item) != 1:
        raise ValueError("a task list item must be a mapping with exactly one task name")
    ((name, task),) = item.items()
    if not isinstance(task, Mapping):
        raise ValueError(f"task {name!r} must be a mapping")
    return str(name), task
