"""Thin servicer of FleetService: the fleet status and the executions' change stream.

The status is orchestrator/fleet_status.py's, the change stream orchestrator/changes.py's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from orchestrator.changes import ExecutionChanges
from orchestrator.fleet_status import FleetStatus
from orchestrator.servicers.errors import streaming, unary
from polyfleet.v1 import fleet_pb2, fleet_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


class FleetServicer(fleet_pb2_grpc.FleetServiceServicer):
    """polyfleet.v1.FleetService."""

    def __init__(self, status: FleetStatus, changes: ExecutionChanges) -> None:
        self._status = status
        self._changes = changes

    @unary
    async def GetFleetStatus(
        self, request: fleet_pb2.GetFleetStatusRequest, context: Context
    ) -> fleet_pb2.GetFleetStatusResponse:
        requested = request.stuck_after if request.HasField("stuck_after") else None
        return await self._status.get(requested)

    @streaming
    async def WatchExecutions(
        self, request: fleet_pb2.WatchExecutionsRequest, context: Context
    ) -> AsyncIterator[fleet_pb2.ExecutionChange]:
        changes = self._changes.follow(request.after_sequence)
        # The request is valid: the headers go out now, since a stream of live changes may
        # stay silent until the next one and its caller should know at once that it is open.
        await context.send_initial_metadata(())
        async for change in changes:
            yield change
