"""Shape of a workflow document: task lists and what every task may have.

What each task type adds is registered with its type (:mod:`polyfleet.dsl.registry`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Task types of the DSL that this runtime does not run (rejected by validation).
UNSUPPORTED_TYPES: tuple[str, ...] = ()
#: Properties every task may have.
COMMON_KEYS = frozenset({"if", "input", "output", "export", "timeout", "then", "metadata"})
#: Flow directives other than the name of a sibling task.
DIRECTIVES = ("continue", "exit", "end")


def entry(item: Any) -> tuple[str, Mapping[str, Any]]:
    """Name and definition of one item of a task list (a single-key mapping)."""
    if not isinstance(item, Mapping) or len(item) != 1:
        raise ValueError("a task list item must be a mapping with exactly one task name")
    ((name, task),) = item.items()
    if not isinstance(task, Mapping):
        raise ValueError(f"task {name!r} must be a mapping")
    return str(name), task
