"""Workflow task statuses as live progress lines and as lines of ``executions get``.

A task is named by its id, the JSON pointer of the task in the document
(``/do/1/fetch``), and rendered with one line per state it reaches::

    ▶ /do/1/fetch (call:http)
    ✓ /do/1/fetch: {"status": 200}
    ✗ /do/2/charge: communication (503) at /do/2/charge
    ↷ /do/3/notify skipped
    ■ /do/4/slow cancelled

Tasks nested in a running composite task (``do``, ``for``, ``fork``, ``try``) are indented
under it, and a ``call: agent`` task names the agent execution it started.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TypeAlias

from google.protobuf.struct_pb2 import Value

from polyfleet.cli.output import json_of_value, shorten
from polyfleet.v1 import common_pb2

TaskPhase: TypeAlias = common_pb2.TaskPhase.ValueType

# A preview, not the value: the whole output is in `executions get -o json`.
PREVIEW_CHARS = 80
# In a preview of an object too long for one line, each string value gets this much.
_BRIEF_CHARS = 16
_LINK = "link"
_SYMBOLS: Mapping[TaskPhase | str, str] = {
    common_pb2.TASK_PHASE_RUNNING: "▶",
    common_pb2.TASK_PHASE_COMPLETED: "✓",
    common_pb2.TASK_PHASE_FAILED: "✗",
    common_pb2.TASK_PHASE_SKIPPED: "↷",
    common_pb2.TASK_PHASE_CANCELLED: "■",
    _LINK: "↳",
}
_ASCII_SYMBOLS: Mapping[TaskPhase | str, str] = {
    common_pb2.TASK_PHASE_RUNNING: ">",
    common_pb2.TASK_PHASE_COMPLETED: "+",
    common_pb2.TASK_PHASE_FAILED: "x",
    common_pb2.TASK_PHASE_SKIPPED: "~",
    common_pb2.TASK_PHASE_CANCELLED: "#",
    _LINK: "^",
}
TASK_SYMBOLS = "".join(_SYMBOLS.values())


def task_phase_name(phase: TaskPhase) -> str:
    """Return the short name of a task phase, e.g. ``RUNNING``.

    Args:
        phase: A TaskPhase value.

    Returns:
        The enum name without the ``TASK_PHASE_`` prefix, or the number if unknown.

    """
    try:
        return common_pb2.TaskPhase.Name(phase).removeprefix("TASK_PHASE_")
    except ValueError:
        return str(int(phase))


def task_error(task: common_pb2.TaskStatus) -> str:
    """Return why a task failed, in one line.

    Args:
        task: The task's status.

    Returns:
        The error's message (which names the error, its status and where it was raised),
        else its type; ``no details`` when the task carries no error.

    """
    error = task.error
    return shorten(error.message or error.type or "no details")


def preview(value: Value, limit: int = PREVIEW_CHARS) -> str:
    """Render a task's output in one short line.

    An object too long for the line keeps every key, with long strings cut and nested
    lists and objects summarized (``{"about": "polyfleet is a…", "items": [2 items]}``), so
    a preview shows the shape of the data rather than the start of one long value.

    Args:
        value: The output.
        limit: Maximum length of the result.

    Returns:
        JSON-like text, at most ``limit`` characters.

    """
    data = json_of_value(value)
    text = _json(data)
    if len(text) > limit and isinstance(data, dict):
        text = "{" + ", ".join(f"{_json(key)}: {_brief(data[key])}" for key in sorted(data)) + "}"
    elif len(text) > limit and isinstance(data, list):
        text = _brief(data)
    return shorten(text, limit)


def _brief(data: object) -> str:
    if isinstance(data, str):
        return _json(shorten(data, _BRIEF_CHARS))
    if isinstance(data, list):
        return f"[{len(data)} item{'' if len(data) == 1 else 's'}]"
    if isinstance(data, dict):
        return "{…}" if data else "{}"
    return _json(data)


def _json(data: object) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def task_summary(task: common_pb2.TaskStatus) -> str:
    """Render a task's final state in one line, for ``executions get``.

    Args:
        task: The task's status.

    Returns:
        For example ``COMPLETED  /do/1/fetch (call:http) -> {"status": 200}``.

    """
    details = [task.type] if task.type else []
    if task.attempts > 1:
        details.append(f"{task.attempts} attempts")
    if task.agent_execution_id:
        details.append(f"agent execution {task.agent_execution_id}")
    if task.workflow_execution_id:
        details.append(f"workflow execution {task.workflow_execution_id}")
    text = f"{task_phase_name(task.phase):<9}  {task.id or task.name}"
    if details:
        text += f" ({', '.join(details)})"
    if task.phase == common_pb2.TASK_PHASE_FAILED or task.HasField("error"):
        return f"{text} -> error: {task_error(task)}"
    if task.HasField("output"):
        return f"{text} -> {preview(task.output)}"
    return text


class TaskProgress:
    """Turns the task statuses of an execution's events into progress lines.

    Each task's line is printed once per state it reaches (phase and attempt), so a
    status repeated by a later event or a replay prints nothing, while a retried task
    (RUNNING again, attempt 2) or one re-run by a ``then:`` jump prints again.
    """

    def __init__(self, *, unicode: bool = True) -> None:
        """Create the renderer.

        Args:
            unicode: Use the ``▶ ✓ ✗ ↷ ■`` symbols; ASCII stand-ins when False.

        """
        self._symbols = _SYMBOLS if unicode else _ASCII_SYMBOLS
        self._shown: dict[str, tuple[TaskPhase, int]] = {}
        self._linked: set[str] = set()

    def lines(self, task: common_pb2.TaskStatus) -> list[str]:
        """Render what is new about one task.

        Args:
            task: A task status from an event's update.

        Returns:
            The lines to print, none when nothing changed.

        """
        key = task.id or task.name
        indent = "  " * self._depth(key)
        found: list[str] = []
        state = (task.phase, task.attempts)
        if task.phase in self._symbols and self._shown.get(key) != state:
            self._shown[key] = state
            found.append(indent + self._line(task, key))
        else:
            # Known from now on, so that its children are indented under it.
            self._shown.setdefault(key, state)
        child = (
            f"agent execution {task.agent_execution_id}"
            if task.agent_execution_id
            else f"workflow execution {task.workflow_execution_id}"
            if task.workflow_execution_id
            else ""
        )
        if child and key not in self._linked:
            self._linked.add(key)
            found.append(f"{indent}{self._symbols[_LINK]} {key}: {child}")
        return found

    def _line(self, task: common_pb2.TaskStatus, key: str) -> str:
        symbol = self._symbols[task.phase]
        if task.phase == common_pb2.TASK_PHASE_RUNNING:
            details = [task.type] if task.type else []
            if task.attempts > 1:
                details.append(f"attempt {task.attempts}")
            return f"{symbol} {key}" + (f" ({', '.join(details)})" if details else "")
        if task.phase == common_pb2.TASK_PHASE_COMPLETED:
            if task.HasField("output"):
                return f"{symbol} {key}: {preview(task.output)}"
            return f"{symbol} {key}"
        if task.phase == common_pb2.TASK_PHASE_FAILED:
            return f"{symbol} {key}: {task_error(task)}"
        if task.phase == common_pb2.TASK_PHASE_SKIPPED:
            return f"{symbol} {key} skipped"
        return f"{symbol} {key} cancelled"

    def _depth(self, key: str) -> int:
        # An ancestor's id is a prefix of its descendants' ids, up to a "/": /do/2/par holds
        # /do/2/par/fork/branches/0/a, and /do/3/loop holds /do/3/loop/for/4/do/0/step.
        prefixes = (key[:index] for index, char in enumerate(key) if char == "/" and index)
        return sum(1 for prefix in prefixes if prefix in self._shown)
