"""Test support for the DSL engine: recording hooks and document helpers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from typing import Any

import httpx

from polyfleet.dsl import Engine, TaskReport, load_document
from tests.http_server import Server

HEADER = 'document: {dsl: "1.0.0", namespace: test, name: wf, version: "1.0.0"}\n'

AgentFn = Callable[[str, str, str], Awaitable[Any]]


def doc(body: str) -> dict[str, Any]:
    """A document made of the standard header and ``body`` (YAML)."""
    return load_document(HEADER + body)


class Hooks:
    """EngineHooks that record everything."""

    def __init__(self, agent: AgentFn | None = None) -> None:
        self.reports: list[TaskReport] = []
        self.checkpoints: list[dict[str, Any]] = []
        self.agent_calls: list[tuple[str, str, str]] = []
        self._agent = agent

    async def report(self, task: TaskReport) -> None:
        self.reports.append(task)

    async def checkpoint(self, state: dict[str, Any]) -> None:
        json.dumps(state)  # must be JSON-serializable as given
        self.checkpoints.append(state)

    async def call_agent(self, agent: str, message: str, task_id: str) -> Any:
        self.agent_calls.append((agent, message, task_id))
        if self._agent is not None:
            return await self._agent(agent, message, task_id)
        return f"{agent}: {message}"

    def phases(self) -> list[tuple[str, str]]:
        """(phase, id) of every report, in order."""
        return [(r.phase, r.id) for r in self.reports]

    def last(self, task_id: str) -> TaskReport:
        """The latest report of ``task_id``."""
        return [r for r in self.reports if r.id == task_id][-1]

    def dump(self) -> str:
        """Everything the host received, as text (to search for leaked values)."""
        reports = [
            {**asdict(r), "error": r.error.as_dict() if r.error else None} for r in self.reports
        ]
        return json.dumps({"reports": reports, "checkpoints": self.checkpoints}, default=str)


async def run(
    document: Mapping[str, Any],
    workflow_input: Any = None,
    *,
    hooks: Hooks | None = None,
    http: httpx.AsyncClient | None = None,
    **options: Any,
) -> Any:
    """Run ``document`` with recording hooks and a throwaway client unless given."""
    hooks = hooks if hooks is not None else Hooks()
    if http is not None:
        return await Engine(document, hooks, http=http, **options).run(workflow_input)
    async with httpx.AsyncClient() as client:
        return await Engine(document, hooks, http=client, **options).run(workflow_input)


__all__ = ["HEADER", "Hooks", "Server", "doc", "run"]
