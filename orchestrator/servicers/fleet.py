"""Thin servicer of FleetService: the fleet status (orchestrator/fleet_status.py)."""

from __future__ import annotations

from typing import Any

import grpc

from orchestrator.fleet_status import FleetStatus
from orchestrator.servicers.errors import unary
from polyfleet.v1 import fleet_pb2, fleet_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


class FleetServicer(fleet_pb2_grpc.FleetServiceServicer):
    """polyfleet.v1.FleetService."""

    def __init__(self, status: FleetStatus) -> None:
        self._status = status

    @unary
    async def GetFleetStatus(
        self, request: fleet_pb2.GetFleetStatusRequest, context: Context
    ) -> fleet_pb2.GetFleetStatusResponse:
        requested = request.stuck_after if request.HasField("stuck_after") else None
        return await self._status.get(requested)
