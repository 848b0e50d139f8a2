"""What the engine tells its host while it runs: task reports, checkpoints, child runs."""

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

    async def emit_event(self, event: dict[str, Any], task_id: str, attempt: int) -> dict[str, Any]:
        """Publish CloudEvent ``event`` for `emit` task ``task_id`` in its ``attempt``.

        ``event`` holds the CloudEvents attributes, extension attributes and `data` as
        top-level keys (`id` and `source` may be missing: the host derives them from the
        execution, task and attempt, so another activity attempt publishes the same event
        once). Return the event as stored, in the same shape.
        """

    async def receive_events(self, after: int, wait: float) -> EventBatch:
        """The events after sequence ``after`` (0: the first) this run may consume.

        Waits up to ``wait`` seconds for one when there is none yet.
        """

    async def run_workflow(self, workflow: ChildWorkflow, task_id: str) -> Any:
        """Run applied workflow ``workflow`` as a child for task ``task_id`` (`run: workflow`).

        Return the child's output, or, when ``workflow.wait`` is False, the child's
        execution ID as soon as it is started.
        """


@dataclass(frozen=True)
class ChildWorkflow:
    """What a `run: workflow` task asks the host to run.

    ``version`` and ``namespace`` are "" when the task does not name them; ``input`` is
    the child's workflow input (an object).
    """

    name: str
    version: str = ""
    namespace: str = ""
    input: dict[str, Any] | None = None
    wait: bool = True


@dataclass(frozen=True)
class EventBatch:
    """Events for `listen`, and the sequence to read on from.

    The events are CloudEvents shaped as in ``emit_event``, in publish order.
    """

    events: list[dict[str, Any]]
    last: int
