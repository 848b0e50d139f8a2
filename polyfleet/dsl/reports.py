"""What the engine tells its host while it runs: task reports, checkpoints, agent calls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from polyfleet.dsl.errors import WorkflowError

RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
#: A task whose `if` was false: reported once, its raw input passed on as its output.
SKIPPED = "SKIPPED"


@dataclass
class TaskReport:
    """The state of one task run, keyed by ``id``; a later report for the same id supersedes.

    ``id`` is the task's JSON pointer in the document, qualified by the loop iteration for
    tasks inside `for` (see the package docs). Values never contain secret values.
    """

    id: str
    name: str
    type: str
    phase: str  # RUNNING | COMPLETED | FAILED | CANCELLED | SKIPPED
    input: Any = None
    output: Any = None
    error: WorkflowError | None = None
    attempts: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None


class EngineHooks(Protocol):
    """The host side of an :class:`~polyfleet.dsl.Engine` run."""

    async def report(self, task: TaskReport) -> None:
        """Called on every task state change, in the order they happen."""

    async def checkpoint(self, state: dict[str, Any]) -> None:
        """Called after each completed task with JSON-serializable state to resume from."""

    async def call_agent(self, agent: str, message: str, task_id: str) -> Any:
        """Run agent ``agent`` on ``message`` for task ``task_id``; return its output."""
