"""Typed calls of EventService: publish and list CloudEvents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from polyfleet.client.transport import Transport
from polyfleet.cloud_events import event_from_data
from polyfleet.v1 import event_pb2, event_pb2_grpc

if TYPE_CHECKING:
    import grpc

    from polyfleet.v1.event_pb2_grpc import EventServiceAsyncStub


class Events:
    """EventService: the CloudEvents workflows emit and listen to."""

    def __init__(self, channel: grpc.aio.Channel, transport: Transport) -> None:
        """Bind to a channel.

        Args:
            channel: The client's channel.
            transport: How calls are made.

        """
        self.stub: EventServiceAsyncStub = event_pb2_grpc.EventServiceStub(channel)
        self._rpc = transport

    async def publish(
        self, event: event_pb2.CloudEvent | Mapping[str, Any]
    ) -> event_pb2.PublishEventResponse:
        """Publish an event (a message, or a flat CloudEvents JSON object).

        Returns:
            The stored record, and ``published`` False when its (source, id) was stored
            before.

        """
        message = event if isinstance(event, event_pb2.CloudEvent) else event_from_data(event)
        request = event_pb2.PublishEventRequest(event=message)
        return await self._rpc.unary(self.stub.PublishEvent, request)

    async def list(
        self,
        *,
        after_sequence: int = 0,
        page_size: int = 0,
        type: str = "",
        source: str = "",
        execution_id: str = "",
    ) -> event_pb2.ListEventsResponse:
        """One page of stored events in sequence order (continue from ``last_sequence``)."""
        request = event_pb2.ListEventsRequest(
            after_sequence=after_sequence,
            page_size=page_size,
            type=type,
            source=source,
            execution_id=execution_id,
        )
        return await self._rpc.unary(self.stub.ListEvents, request)
