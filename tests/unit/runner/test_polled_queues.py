"""Which queues a runner polls, one Worker per queue (runner pools)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from polyfleet.config import RunnerSettings, TaskQueueSettings
from runner.app import RunnerAppSettings, polled_queues


def ensure_thread() -> None: ...


def execute_graphton() -> None: ...


def execute_workflow() -> None: ...


BY_KIND: dict[str, list[Callable[..., Any]]] = {
    "agent": [ensure_thread, execute_graphton],
    "workflow": [execute_workflow],
}
QUEUES = TaskQueueSettings(
    agent_execution_runner_task_queue="agents", workflow_execution_runner_task_queue="workflows"
)


def polled(**runner: Any) -> dict[str, list[str]]:
    settings = RunnerAppSettings(queues=QUEUES, runner=RunnerSettings(**runner))
    return {q: [a.__name__ for a in acts] for q, acts in polled_queues(settings, BY_KIND).items()}


def test_without_lists_the_configured_queues_are_polled() -> None:
    assert polled() == {
        "agents": ["ensure_thread", "execute_graphton"],
        "workflows": ["execute_workflow"],
    }


def test_lists_replace_the_default_queue_of_their_kind() -> None:
    assert polled(agent_queues=["gpu-runners", "agents"], workflows=False) == {
        "gpu-runners": ["ensure_thread", "execute_graphton"],
        "agents": ["ensure_thread", "execute_graphton"],
    }
    assert polled(agents=False, workflow_queues=["tenant-a"]) == {
        "tenant-a": ["execute_workflow"],
    }


def test_a_queue_of_both_kinds_gets_one_worker_with_both_kinds_activities() -> None:
    assert polled(agent_queues=["shared"], workflow_queues=["shared"]) == {
        "shared": ["ensure_thread", "execute_graphton", "execute_workflow"],
    }
