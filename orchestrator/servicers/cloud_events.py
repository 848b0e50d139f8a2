"""Thin servicer of EventService: publish and list CloudEvents (orchestrator/cloud_events.py)."""

from __future__ import annotations

from typing import Any

import grpc

from orchestrator.cloud_events import CloudEvents
from orchestrator.servicers.errors import unary
from polyfleet.v1 import event_pb2, event_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


class EventServicer(event_pb2_grpc.EventServiceServicer):
    """polyfleet.v1.EventService."""

    def __init__(self, events: CloudEvents) -> None:
        self._events = events

    @unary
    async def PublishEvent(
        self, request: event_pb2.PublishEventRequest, context: Context
    ) -> event_pb2.PublishEventResponse:
        record, published = await self._events.publish(request.event)
        return event_pb2.PublishEventResponse(record=record, published=published)

    @unary
    async def ListEvents(
        self, request: event_pb2.ListEventsRequest, context: Context
    ) -> event_pb2.ListEventsResponse:
        return await self._events.list_events(request)
