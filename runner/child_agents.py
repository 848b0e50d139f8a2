"""The child agent executions of one workflow execution, over RunnerService.

A workflow's `call: agent` task runs an agent execution as the workflow execution's child:
the runner creates, follows and cancels it through RunnerService (never the public API),
naming the parent in every call. :class:`ChildAgents` offers the
:class:`~polyfleet.client.watch.ExecutionCalls` of those children, so
:class:`~polyfleet.client.watch.ExecutionWatch` follows one with resume after a broken
stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from polyfleet.client.errors import PolyfleetError
from polyfleet.client.watch import ExecutionWatch
from polyfleet.v1 import agent_execution_pb2, common_pb2
from runner.runner_client import RunnerClient

AgentExecution = agent_execution_pb2.AgentExecution


class ChildAgents:
    """Create, read, follow and cancel the child agent executions of one parent.

    Args:
        client: The runner's RunnerService client.
        parent_id: The workflow execution whose tasks ask for the children.

    """

    def __init__(self, client: RunnerClient, parent_id: str) -> None:
        self._client = client
        self.parent_id = parent_id

    async def create(
        self, task_id: str, agent: str, message: str, request_id: str
    ) -> AgentExecution:
        """Create a child for ``task_id``; the orchestrator labels it with its parent.

        ``request_id`` makes a retry (another activity attempt) return the same child.
        """
        return await self._client.create_child(self.parent_id, task_id, agent, message, request_id)

    async def get(self, execution_id: str) -> AgentExecution:
        """Read a child."""
        return await self._client.get_child(self.parent_id, execution_id)

    async def cancel(self, execution_id: str) -> AgentExecution:
        """Ask for a child to be cancelled."""
        return await self._client.cancel_child(self.parent_id, execution_id)

    async def events(
        self, execution_id: str, after_sequence: int = 0
    ) -> AsyncIterator[common_pb2.ExecutionEvent]:
        """One watch stream's events after ``after_sequence`` (the snapshot skipped).

        A failed stream raises :class:`PolyfleetError`, which :class:`ExecutionWatch`
        resumes after when its code says the stream broke (UNAVAILABLE, INTERNAL).
        """
        try:
            async for response in self._client.watch_child(
                self.parent_id, execution_id, after_sequence
            ):
                if response.HasField("event"):
                    yield response.event
        except grpc.aio.AioRpcError as err:
            raise PolyfleetError.from_rpc(err) from err

    def watch(self, execution_id: str) -> ExecutionWatch[AgentExecution]:
        """Follow a child until it ends, resuming after a broken stream."""
        return ExecutionWatch(self, execution_id)
