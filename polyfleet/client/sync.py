"""The blocking client: :class:`SyncClient`, for scripts and notebooks without asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from polyfleet.client.client import Client
from polyfleet.client.executions import AgentExecution, WorkflowExecution
from polyfleet.config import ApiSettings
from polyfleet.contract import Execution
from polyfleet.v1 import common_pb2

T = TypeVar("T")


class SyncClient:
    """A :class:`Client` behind blocking calls.

    It runs the asynchronous client on a private event loop (gRPC's asyncio channels belong
    to one loop), so it must not be used from inside a running event loop: use
    :class:`Client` there. Any call of the asynchronous client is available through
    :meth:`call`::

        with SyncClient("127.0.0.1:7234") as client:
            done = client.run_agent("assistant", "Hello", wait=True)
            agent = client.call(lambda c: c.agents.get("assistant"))

    """

    def __init__(
        self,
        address: str | None = None,
        *,
        settings: ApiSettings | None = None,
        tls: bool | None = None,
        root_cert: Path | None = None,
        token: str | None = None,
    ) -> None:
        """Connect (see :meth:`Client.connect` for the arguments)."""
        self._runner = asyncio.Runner()
        self.client = self._runner.run(
            Client.connect(address, settings=settings, tls=tls, root_cert=root_cert, token=token)
        )

    def close(self) -> None:
        """Close the client and its event loop."""
        try:
            self._runner.run(self.client.close())
        finally:
            self._runner.close()

    def __enter__(self) -> SyncClient:
        """Use the client in ``with``; it is closed on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client."""
        self.close()

    def call(self, call: Callable[[Client], Awaitable[T]]) -> T:
        """Run any call of the asynchronous client and return its result.

        Args:
            call: Given the :class:`Client`, returns the awaitable to run.

        Returns:
            Its result.

        """

        async def run() -> T:
            return await call(self.client)

        return self._runner.run(run())

    def run_agent(self, agent: str, message: str, **options: Any) -> AgentExecution:
        """:meth:`Client.run_agent`, blocking."""
        return self.call(lambda c: c.run_agent(agent, message, **options))

    def run_workflow(
        self, workflow: str, workflow_input: Mapping[str, Any] | None = None, **options: Any
    ) -> WorkflowExecution:
        """:meth:`Client.run_workflow`, blocking."""
        return self.call(lambda c: c.run_workflow(workflow, workflow_input, **options))

    def get(self, execution_id: str) -> Execution:
        """:meth:`Client.get`, blocking."""
        return self.call(lambda c: c.get(execution_id))

    def cancel(self, execution_id: str) -> Execution:
        """:meth:`Client.cancel`, blocking."""
        return self.call(lambda c: c.cancel(execution_id))

    def wait(self, execution_id: str, timeout: float | None = None) -> Execution:
        """:meth:`Client.wait`, blocking."""
        return self.call(lambda c: c.wait(execution_id, timeout))

    def watch(
        self, execution_id: str, after_sequence: int = 0
    ) -> Iterator[common_pb2.ExecutionEvent]:
        """:meth:`Client.watch` as a blocking iterator of events, resuming as it does."""
        events = self.client.watch(execution_id, after_sequence).__aiter__()
        try:
            while True:
                try:
                    yield self._runner.run(_next(events))
                except StopAsyncIteration:
                    return
        finally:
            # An iteration abandoned early must still close the stream on its own loop.
            self._runner.run(_close(events))


async def _next(
    events: AsyncGenerator[common_pb2.ExecutionEvent, None],
) -> common_pb2.ExecutionEvent:
    return await anext(events)


async def _close(events: AsyncGenerator[common_pb2.ExecutionEvent, None]) -> None:
    await events.aclose()
