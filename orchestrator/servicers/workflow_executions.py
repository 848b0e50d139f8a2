"""Thin servicer for WorkflowExecutionService."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from orchestrator.servicers.errors import streaming, unary
from orchestrator.workflow_executions import WorkflowExecutions
from polyfleet.v1 import workflow_execution_pb2, workflow_execution_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
WorkflowExecution = workflow_execution_pb2.WorkflowExecution


class WorkflowExecutionServicer(workflow_execution_pb2_grpc.WorkflowExecutionServiceServicer):
    """polyfleet.v1.WorkflowExecutionService."""

    def __init__(self, executions: WorkflowExecutions) -> None:
        self._executions = executions

    @unary
    async def CreateWorkflowExecution(
        self, request: workflow_execution_pb2.CreateWorkflowExecutionRequest, context: Context
    ) -> WorkflowExecution:
        return await self._executions.create(request)

    @unary
    async def ExecuteWorkflow(
        self, request: workflow_execution_pb2.ExecuteWorkflowRequest, context: Context
    ) -> WorkflowExecution:
        timeout = request.timeout if request.HasField("timeout") else None
        return await self._executions.execute(request.request, timeout)

    @unary
    async def GetWorkflowExecution(
        self, request: workflow_execution_pb2.GetWorkflowExecutionRequest, context: Context
    ) -> WorkflowExecution:
        return await self._executions.get(request.id, request.view)

    @unary
    async def ListWorkflowExecutions(
        self, request: workflow_execution_pb2.ListWorkflowExecutionsRequest, context: Context
    ) -> workflow_execution_pb2.ListWorkflowExecutionsResponse:
        return await self._executions.list(request)

    @unary
    async def CancelWorkflowExecution(
        self, request: workflow_execution_pb2.CancelWorkflowExecutionRequest, context: Context
    ) -> WorkflowExecution:
        return await self._executions.cancel(request.id)

    @streaming
    async def WatchWorkflowExecution(
        self, request: workflow_execution_pb2.WatchWorkflowExecutionRequest, context: Context
    ) -> AsyncIterator[workflow_execution_pb2.WatchWorkflowExecutionResponse]:
        async for item in self._executions.watch(request.id, request.after_sequence):
            if isinstance(item, WorkflowExecution):
                yield workflow_execution_pb2.WatchWorkflowExecutionResponse(snapshot=item)
            else:
                yield workflow_execution_pb2.WatchWorkflowExecutionResponse(event=item)
