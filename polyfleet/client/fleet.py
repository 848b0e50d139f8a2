"""Typed calls of FleetService: the fleet status."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from google.protobuf.duration_pb2 import Duration

from polyfleet.client.transport import Transport
from polyfleet.v1 import fleet_pb2, fleet_pb2_grpc

if TYPE_CHECKING:
    import grpc

    from polyfleet.v1.fleet_pb2_grpc import FleetServiceAsyncStub


class Fleet:
    """FleetService: task queues, pollers, backlogs and executions by phase."""

    def __init__(self, channel: grpc.aio.Channel, transport: Transport) -> None:
        """Bind to a channel.

        Args:
            channel: The client's channel.
            transport: How calls are made.

        """
        self.stub: FleetServiceAsyncStub = fleet_pb2_grpc.FleetServiceStub(channel)
        self._rpc = transport

    async def status(
        self, stuck_after: timedelta | None = None
    ) -> fleet_pb2.GetFleetStatusResponse:
        """Fetch the fleet status.

        Args:
            stuck_after: Report RUNNING executions without any event for longer than this;
                None uses the orchestrator's ``POLYFLEET_STUCK_AFTER``.

        Returns:
            Every task queue in use with its pollers and backlog, executions by phase and
            the possibly stuck executions.

        """
        request = fleet_pb2.GetFleetStatusRequest()
        if stuck_after is not None:
            duration = Duration()
            duration.FromTimedelta(stuck_after)
            request.stuck_after.CopyFrom(duration)
        return await self._rpc.unary(self.stub.GetFleetStatus, request)
