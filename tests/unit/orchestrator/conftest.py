"""Fixtures of the orchestrator's unit tests: a real store, a Temporal client that refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from temporalio.service import RPCError, RPCStatusCode

import store
from polyfleet.v1 import agent_pb2


class RefusingTemporal:
    """Stands in for the Temporal client: every start fails like an unreachable server."""

    def __init__(self) -> None:
        self.starts: list[dict[str, Any]] = []

    async def start_workflow(self, *args: Any, **kwargs: Any) -> None:
        self.starts.append(kwargs)
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[store.Store]:
    opened = store.Store.open(tmp_path / "store")
    await opened.agents.create(
        agent_pb2.Agent(
            name="assistant",
            model=agent_pb2.ModelConfig(
                provider="scripted", scripted=agent_pb2.ScriptedModel(default_reply="hi")
            ),
        )
    )
    yield opened
    opened.close()
