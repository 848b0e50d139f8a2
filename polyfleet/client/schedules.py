"""Typed calls of ScheduleService: the schedules of workflows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from polyfleet.client.transport import Transport
from polyfleet.v1 import schedule_pb2, schedule_pb2_grpc

if TYPE_CHECKING:
    import grpc

    from polyfleet.v1.schedule_pb2_grpc import ScheduleServiceAsyncStub


class Schedules:
    """ScheduleService: list, describe, pause, resume and delete workflow schedules.

    A workflow's schedule is created and updated by applying the workflow (its document's
    top-level `schedule`); see docs/dsl.md, "schedule".
    """

    def __init__(self, channel: grpc.aio.Channel, transport: Transport) -> None:
        """Bind to a channel.

        Args:
            channel: The client's channel.
            transport: How calls are made.

        """
        self.stub: ScheduleServiceAsyncStub = schedule_pb2_grpc.ScheduleServiceStub(channel)
        self._rpc = transport

    async def list(self) -> list[schedule_pb2.Schedule]:
        """Every schedule, by workflow name."""
        response = await self._rpc.unary(
            self.stub.ListSchedules, schedule_pb2.ListSchedulesRequest()
        )
        return list(response.schedules)

    async def get(self, workflow: str) -> schedule_pb2.Schedule:
        """The schedule of ``workflow`` (NOT_FOUND without one)."""
        return await self._rpc.unary(
            self.stub.GetSchedule, schedule_pb2.GetScheduleRequest(workflow=workflow)
        )

    async def pause(self, workflow: str, reason: str = "") -> schedule_pb2.Schedule:
        """Pause the schedule of ``workflow``; ``reason`` goes into its note."""
        return await self._rpc.unary(
            self.stub.PauseSchedule,
            schedule_pb2.PauseScheduleRequest(workflow=workflow, reason=reason),
        )

    async def resume(self, workflow: str, reason: str = "") -> schedule_pb2.Schedule:
        """Resume the paused schedule of ``workflow``."""
        return await self._rpc.unary(
            self.stub.ResumeSchedule,
            schedule_pb2.ResumeScheduleRequest(workflow=workflow, reason=reason),
        )

    async def delete(self, workflow: str) -> None:
        """Delete the schedule of ``workflow`` (applying the workflow again recreates it)."""
        await self._rpc.unary(
            self.stub.DeleteSchedule, schedule_pb2.DeleteScheduleRequest(workflow=workflow)
        )
