"""Thin servicer for the internal RunnerService."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from orchestrator.cloud_events import CloudEvents
from orchestrator.errors import UnavailableError
from orchestrator.executions import RUNNER_SOURCE, ExecutionRegistry
from orchestrator.runner_operations import RunnerOperations
from orchestrator.servicers.agent_executions import watch_responses
from orchestrator.servicers.errors import streaming, unary
from polyfleet.v1 import (
    agent_execution_pb2,
    event_pb2,
    runner_pb2,
    runner_pb2_grpc,
    workflow_execution_pb2,
)

Context = grpc.aio.ServicerContext[Any, Any]


class RunnerServicer(runner_pb2_grpc.RunnerServiceServicer):
    """polyfleet.v1.RunnerService: what stateless runners fetch and report."""

    def __init__(
        self,
        operations: RunnerOperations,
        executions: ExecutionRegistry,
        events: CloudEvents | None = None,
    ) -> None:
        self._operations = operations
        self._executions = executions
        self._events = events

    @unary
    async def GetAgentExecutionContext(
        self, request: runner_pb2.GetAgentExecutionContextRequest, context: Context
    ) -> runner_pb2.GetAgentExecutionContextResponse:
        return await self._operations.context(request.execution_id)

    @unary
    async def EnsureThread(
        self, request: runner_pb2.EnsureThreadRequest, context: Context
    ) -> runner_pb2.EnsureThreadResponse:
        return await self._operations.ensure_thread(request.execution_id)

    @unary
    async def ReportProgress(
        self, request: runner_pb2.ReportProgressRequest, context: Context
    ) -> runner_pb2.ReportProgressResponse:
        # The turn is appended in the report's commit, whether the report is applied now or
        # was before; a refused report (a terminal execution) appends nothing.
        then = (
            self._operations.thread_appending(request.thread_append)
            if request.HasField("thread_append")
            else None
        )
        result = await self._executions.for_id(request.execution_id).report(
            request.execution_id, request.report_id, RUNNER_SOURCE, request.update, then
        )
        return result.as_message(runner_pb2.ReportProgressResponse)

    @unary
    async def AppendThreadMessages(
        self, request: runner_pb2.AppendThreadMessagesRequest, context: Context
    ) -> runner_pb2.AppendThreadMessagesResponse:
        return await self._operations.append_thread_messages(request)

    @unary
    async def GetWorkflowExecutionContext(
        self, request: runner_pb2.GetWorkflowExecutionContextRequest, context: Context
    ) -> runner_pb2.GetWorkflowExecutionContextResponse:
        return await self._operations.workflow_context(request.execution_id)

    @unary
    async def PutCheckpoint(
        self, request: runner_pb2.PutCheckpointRequest, context: Context
    ) -> runner_pb2.PutCheckpointResponse:
        await self._operations.put_checkpoint(request)
        return runner_pb2.PutCheckpointResponse()

    @unary
    async def GetCheckpoint(
        self, request: runner_pb2.GetCheckpointRequest, context: Context
    ) -> runner_pb2.GetCheckpointResponse:
        return await self._operations.get_checkpoint(request.execution_id)

    @unary
    async def CreateChildAgentExecution(
        self, request: runner_pb2.CreateChildAgentExecutionRequest, context: Context
    ) -> agent_execution_pb2.AgentExecution:
        return await self._operations.create_child(request)

    @streaming
    async def WatchChildAgentExecution(
        self, request: runner_pb2.WatchChildAgentExecutionRequest, context: Context
    ) -> AsyncIterator[agent_execution_pb2.WatchAgentExecutionResponse]:
        async for response in watch_responses(self._operations.watch_child(request)):
            yield response

    @unary
    async def CancelChildAgentExecution(
        self, request: runner_pb2.CancelChildAgentExecutionRequest, context: Context
    ) -> agent_execution_pb2.AgentExecution:
        return await self._operations.cancel_child(request)

    @unary
    async def CreateChildWorkflowExecution(
        self, request: runner_pb2.CreateChildWorkflowExecutionRequest, context: Context
    ) -> workflow_execution_pb2.WorkflowExecution:
        return await self._operations.create_child_workflow(request)

    @streaming
    async def WatchChildWorkflowExecution(
        self, request: runner_pb2.WatchChildWorkflowExecutionRequest, context: Context
    ) -> AsyncIterator[workflow_execution_pb2.WatchWorkflowExecutionResponse]:
        async for item in self._operations.watch_child_workflow(request):
            if isinstance(item, workflow_execution_pb2.WorkflowExecution):
                yield workflow_execution_pb2.WatchWorkflowExecutionResponse(snapshot=item)
            else:
                yield workflow_execution_pb2.WatchWorkflowExecutionResponse(event=item)

    @unary
    async def CancelChildWorkflowExecution(
        self, request: runner_pb2.CancelChildWorkflowExecutionRequest, context: Context
    ) -> workflow_execution_pb2.WorkflowExecution:
        return await self._operations.cancel_child_workflow(request)

    def _cloud_events(self) -> CloudEvents:
        if self._events is None:
            raise UnavailableError("events are not served by this orchestrator")
        return self._events

    @unary
    async def EmitEvent(
        self, request: event_pb2.EmitEventRequest, context: Context
    ) -> event_pb2.EmitEventResponse:
        record, published = await self._cloud_events().emit(request)
        return event_pb2.EmitEventResponse(record=record, published=published)

    @unary
    async def ReceiveEvents(
        self, request: event_pb2.ReceiveEventsRequest, context: Context
    ) -> event_pb2.ReceiveEventsResponse:
        return await self._cloud_events().receive_for(request)
