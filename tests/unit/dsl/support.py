"""Test support for the DSL engine: recording hooks and document helpers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from typing import Any

import httpx

from polyfleet.dsl import Engine, EventBatch, TaskReport, load_document
from polyfleet.dsl.reports import ChildWorkflow
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
        # `run: workflow`: what was asked, and what answers (default: an echo).
        self.workflow_calls: list[tuple[ChildWorkflow, str]] = []
        self.workflow_fn: Callable[[ChildWorkflow, str], Awaitable[Any]] | None = None
        # The event bus: every emitted event, in order; a sequence is an index + 1.
        self.events: list[dict[str, Any]] = []
        self.receive_calls = 0
        self._arrived = asyncio.Event()

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

    async def run_workflow(self, workflow: ChildWorkflow, task_id: str) -> Any:
        self.workflow_calls.append((workflow, task_id))
        if self.workflow_fn is not None:
            return await self.workflow_fn(workflow, task_id)
        if not workflow.wait:
            return f"wex-{workflow.name}"
        return {"ran": workflow.name, "input": workflow.input}

    async def emit_event(self, event: dict[str, Any], task_id: str, attempt: int) -> dict[str, Any]:
        stored = {
            "specversion": "1.0",
            "source": "/test",
            "id": f"{task_id}#{attempt}",
            **event,
        }
        if not any(e["id"] == stored["id"] for e in self.events):
            self.events.append(stored)
            self._arrived.set()
        return stored

    async def receive_events(self, after: int, wait: float) -> EventBatch:
        self.receive_calls += 1
        if len(self.events) <= after:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._arrived.wait()
        return EventBatch(list(self.events[after:]), len(self.events))

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
