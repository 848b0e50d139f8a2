"""Thin servicer of ScheduleService: workflow schedules (orchestrator/schedules.py)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import empty_pb2

from orchestrator.schedules import Schedules
from orchestrator.servicers.errors import unary
from polyfleet.v1 import schedule_pb2, schedule_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


class ScheduleServicer(schedule_pb2_grpc.ScheduleServiceServicer):
    """polyfleet.v1.ScheduleService."""

    def __init__(self, schedules: Schedules) -> None:
        self._schedules = schedules

    @unary
    async def ListSchedules(
        self, request: schedule_pb2.ListSchedulesRequest, context: Context
    ) -> schedule_pb2.ListSchedulesResponse:
        return schedule_pb2.ListSchedulesResponse(schedules=await self._schedules.list())

    @unary
    async def GetSchedule(
        self, request: schedule_pb2.GetScheduleRequest, context: Context
    ) -> schedule_pb2.Schedule:
        return await self._schedules.get(request.workflow)

    @unary
    async def PauseSchedule(
        self, request: schedule_pb2.PauseScheduleRequest, context: Context
    ) -> schedule_pb2.Schedule:
        return await self._schedules.pause(request.workflow, request.reason)

    @unary
    async def ResumeSchedule(
        self, request: schedule_pb2.ResumeScheduleRequest, context: Context
    ) -> schedule_pb2.Schedule:
        return await self._schedules.resume(request.workflow, request.reason)

    @unary
    async def DeleteSchedule(
        self, request: schedule_pb2.DeleteScheduleRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._schedules.delete(request.workflow)
        return empty_pb2.Empty()
