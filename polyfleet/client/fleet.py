"""Typed calls of FleetService: the fleet status and the change stream of every execution."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING

from google.protobuf.duration_pb2 import Duration

from polyfleet.client.transport import Transport
from polyfleet.v1 import fleet_pb2, fleet_pb2_grpc

if TYPE_CHECKING:
    import grpc

    from polyfleet.v1.fleet_pb2_grpc import FleetServiceAsyncStub


class Fleet:
    """FleetService: task queues, pollers, backlogs, executions by phase, and their changes."""

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

    def watch_executions(self, after_sequence: int = 0) -> AsyncIterator[fleet_pb2.ExecutionChange]:
        """Stream every execution's changes (created, phase changed), both kinds.

        The stream does not end by itself. Each change carries the execution in the BASIC
        view and a sequence; to resume after a broken stream, pass the last sequence seen.
        When the orchestrator no longer holds the changes after it (too old, or it restarted)
        the stream starts with a RESET change: list the executions again, then go on.

        Args:
            after_sequence: Only changes after this sequence; 0 for changes from now on.

        Returns:
            An async iterator of the changes, in sequence order.

        Raises:
            PolyfleetError: The call failed or the stream broke (while iterating).

        """
        request = fleet_pb2.WatchExecutionsRequest(after_sequence=after_sequence)
        return self._rpc.stream(self.stub.WatchExecutions, request)
