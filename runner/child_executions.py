"""The child executions of one workflow execution, over RunnerService.

A workflow's `call: agent` task runs an agent execution, and its `run: workflow` task another
applied workflow, as the workflow execution's child: the runner creates, follows and cancels
it through RunnerService (never the public API), naming the parent in every call.
:class:`ChildExecutions` offers the :class:`~polyfleet.client.watch.ExecutionCalls` of those
children, so :class:`~polyfleet.client.watch.ExecutionWatch` follows one with resume after a
broken stream; :class:`ChildAgents` and :class:`ChildWorkflows` add each kind's Create.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, Literal, Protocol, TypeVar

import grpc
from google.protobuf import struct_pb2

from polyfleet.client.errors import PolyfleetError
from polyfleet.client.watch import ExecutionWatch
from polyfleet.contract import Execution
from polyfleet.v1 import agent_execution_pb2, common_pb2, workflow_execution_pb2
from runner.runner_client import RunnerClient

AgentExecution = agent_execution_pb2.AgentExecution
WorkflowExecution = workflow_execution_pb2.WorkflowExecution

E = TypeVar("E", bound=Execution)


class _WatchResponse(Protocol):
    """A response of a child's Watch stream: its snapshot or one event."""

    @property
    def event(self) -> common_pb2.ExecutionEvent: ...

    def HasField(self, field_name: Literal["event"], /) -> bool: ...  # noqa: N802


# A RunnerService call about one child: (parent ID, child ID).
ChildCall = Callable[[str, str], Awaitable[E]]
# One Watch stream of a child: (parent ID, child ID, after sequence).
ChildWatch = Callable[[str, str, int], AsyncIterator[_WatchResponse]]


class ChildExecutions(Generic[E]):
    """Read, follow and cancel the child executions of one kind of one parent.

    Args:
        parent_id: The workflow execution whose tasks ask for the children.
        get: The kind's read of a child.
        cancel: The kind's cancel of a child.
        watch: The kind's Watch stream of a child.

    """

    def __init__(
        self, parent_id: str, get: ChildCall[E], cancel: ChildCall[E], watch: ChildWatch
    ) -> None:
        self.parent_id = parent_id
        self._get = get
        self._cancel = cancel
        self._watch = watch

    async def get(self, execution_id: str) -> E:
        """Read a child."""
        return await self._get(self.parent_id, execution_id)

    async def cancel(self, execution_id: str) -> E:
        """Ask for a child to be cancelled."""
        return await self._cancel(self.parent_id, execution_id)

    async def events(
        self, execution_id: str, after_sequence: int = 0
    ) -> AsyncIterator[common_pb2.ExecutionEvent]:
        """One watch stream's events after ``after_sequence`` (the snapshot skipped).

        A failed stream raises :class:`PolyfleetError`, which :class:`ExecutionWatch`
        resumes after when its code says the stream broke (UNAVAILABLE, INTERNAL).
        """
        try:
            async for response in self._watch(self.parent_id, execution_id, after_sequence):
                if response.HasField("event"):
                    yield response.event
        except grpc.aio.AioRpcError as err:
            raise PolyfleetError.from_rpc(err) from err

    def watch(self, execution_id: str) -> ExecutionWatch[E]:
        """Follow a child until it ends, resuming after a broken stream."""
        return ExecutionWatch(self, execution_id)


class ChildAgents(ChildExecutions[AgentExecution]):
    """The child agent executions of one parent, for its `call: agent` tasks.

    Args:
        client: The runner's RunnerService client.
        parent_id: The workflow execution whose tasks ask for the children.

    """

    def __init__(self, client: RunnerClient, parent_id: str) -> None:
        super().__init__(parent_id, client.get_child, client.cancel_child, client.watch_child)
        self._client = client

    async def create(
        self, task_id: str, agent: str, message: str, request_id: str
    ) -> AgentExecution:
        """Create a child for ``task_id``; the orchestrator labels it with its parent.

        ``request_id`` makes a retry (another activity attempt) return the same child.
        """
        return await self._client.create_child(self.parent_id, task_id, agent, message, request_id)


class ChildWorkflows(ChildExecutions[WorkflowExecution]):
    """The child workflow executions of one parent, for its `run: workflow` tasks.

    Args:
        client: The runner's RunnerService client.
        parent_id: The workflow execution whose tasks ask for the children.

    """

    def __init__(self, client: RunnerClient, parent_id: str) -> None:
        super().__init__(
            parent_id,
            client.get_child_workflow,
            client.cancel_child_workflow,
            client.watch_child_workflow,
        )
        self._client = client

    async def create(
        self,
        task_id: str,
        workflow: tuple[str, str, str],
        workflow_input: struct_pb2.Struct,
        request_id: str,
    ) -> WorkflowExecution:
        """Create a child for ``task_id``; the orchestrator labels it with its parent.

        ``workflow`` is (name, version, namespace). ``request_id`` makes a retry (another
        activity attempt) return the same child.
        """
        return await self._client.create_child_workflow(
            self.parent_id, task_id, workflow, workflow_input, request_id
        )
