"""``polyfleet schedules list|get|pause|resume|delete``: the schedules of workflows."""

from __future__ import annotations

import argparse
import asyncio

from polyfleet.cli import api
from polyfleet.cli.api import api_address
from polyfleet.cli.errors import EXIT_OK
from polyfleet.cli.output import Console, format_table, format_timestamp, shorten, to_json
from polyfleet.v1 import schedule_pb2


def cmd_schedules_list(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet schedules list``: every workflow schedule."""
    return asyncio.run(_list(args, console))


async def _list(args: argparse.Namespace, console: Console) -> int:
    async with api.connect(api_address(args)) as client:
        schedules = await client.schedules.list()
    if args.output == "json":
        response = schedule_pb2.ListSchedulesResponse(schedules=schedules)
        print(to_json(response), file=console.out)
    elif schedules:
        print(schedule_table(schedules), file=console.out)
    else:
        print(
            "No schedules found. A workflow whose document has a top-level 'schedule' gets "
            "one when applied.",
            file=console.err,
        )
    return EXIT_OK


def cmd_schedules_get(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet schedules get WORKFLOW``: one schedule with its next and recent runs."""
    return asyncio.run(_show(args, console, "get"))


def cmd_schedules_pause(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet schedules pause WORKFLOW``: stop starting executions."""
    return asyncio.run(_show(args, console, "pause"))


def cmd_schedules_resume(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet schedules resume WORKFLOW``: start executions again."""
    return asyncio.run(_show(args, console, "resume"))


async def _show(args: argparse.Namespace, console: Console, action: str) -> int:
    async with api.connect(api_address(args)) as client:
        if action == "pause":
            schedule = await client.schedules.pause(args.workflow, args.reason)
        elif action == "resume":
            schedule = await client.schedules.resume(args.workflow, args.reason)
        else:
            schedule = await client.schedules.get(args.workflow)
    if args.output == "json":
        print(to_json(schedule), file=console.out)
    else:
        print(describe_schedule(schedule), file=console.out)
    return EXIT_OK


def cmd_schedules_delete(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet schedules delete WORKFLOW``: delete a schedule (apply recreates it)."""
    return asyncio.run(_delete(args, console))


async def _delete(args: argparse.Namespace, console: Console) -> int:
    async with api.connect(api_address(args)) as client:
        await client.schedules.delete(args.workflow)
    if args.output == "json":
        print("{}", file=console.out)
    else:
        print(
            f"schedule of workflow {args.workflow} deleted (applying the workflow again "
            "recreates it; remove 'schedule' from its document to stop it for good)",
            file=console.out,
        )
    return EXIT_OK


def _next(schedule: schedule_pb2.Schedule) -> str:
    if schedule.paused:
        return "paused"
    if not schedule.next_action_times:
        return "-"
    return format_timestamp(schedule.next_action_times[0])


def schedule_table(schedules: list[schedule_pb2.Schedule]) -> str:
    """Render schedules as a table: WORKFLOW, SPEC, PAUSED, NEXT, ACTIONS.

    Args:
        schedules: The schedules, in display order.

    Returns:
        The table text.

    """
    rows = [
        [
            s.workflow,
            shorten(s.spec, 40),
            "yes" if s.paused else "no",
            _next(s),
            str(s.action_count),
        ]
        for s in schedules
    ]
    return format_table(["WORKFLOW", "SPEC", "PAUSED", "NEXT", "ACTIONS"], rows)


def describe_schedule(schedule: schedule_pb2.Schedule) -> str:
    """Render one schedule: its spec and state, next runs and recent actions.

    Args:
        schedule: The schedule.

    Returns:
        Multi-line text.

    """
    lines = [
        f"Workflow:  {schedule.workflow}",
        f"Schedule:  {schedule.spec}",
        f"Paused:    {'yes' if schedule.paused else 'no'}",
    ]
    if schedule.note:
        lines.append(f"Note:      {shorten(schedule.note, 200)}")
    lines.append(f"Actions:   {schedule.action_count}")
    if schedule.schedule_id:
        lines.append(f"Temporal:  schedule {schedule.schedule_id}")
    else:
        lines.append("Events:    started by published events (schedule.on)")
    if schedule.next_action_times:
        lines.append("Next runs:")
        lines.extend(f"  {format_timestamp(at)}" for at in schedule.next_action_times)
    if schedule.recent_actions:
        lines.append("Recent actions:")
        lines.extend(
            f"  {format_timestamp(action.scheduled_time)}  {action.start_workflow_id}"
            for action in schedule.recent_actions
        )
    return "\n".join(lines)
