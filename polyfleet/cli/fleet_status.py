"""``polyfleet fleet status``: task queues, pollers, backlogs, executions by phase, stuck?"""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from polyfleet.cli import api
from polyfleet.cli.api import api_address
from polyfleet.cli.errors import EXIT_OK
from polyfleet.cli.output import Console, format_table, format_timestamp, to_json
from polyfleet.contract import phase_name
from polyfleet.durations import format_duration
from polyfleet.v1 import fleet_pb2

# Temporal reports a worker without a rate limit as polling at 100000 tasks per second.
_UNLIMITED = 100_000
_ROLES = {
    fleet_pb2.TASK_QUEUE_ROLE_ORCHESTRATOR: "orchestrator",
    fleet_pb2.TASK_QUEUE_ROLE_RUNNER: "runner",
}


def cmd_fleet_status(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet fleet status``: the state of the worker fleet."""
    return asyncio.run(_fleet_status(args, console))


async def _fleet_status(args: argparse.Namespace, console: Console) -> int:
    stuck_after: timedelta | None = args.stuck_after
    async with api.connect(api_address(args)) as client:
        status = await client.fleet.status(stuck_after)
    if args.output == "json":
        print(to_json(status), file=console.out)
    else:
        print(render_fleet_status(status), file=console.out)
    return EXIT_OK


def render_fleet_status(status: fleet_pb2.GetFleetStatusResponse) -> str:
    """Render the fleet status as text: queues, pollers, executions, warnings.

    Args:
        status: The status as GetFleetStatus returned it.

    Returns:
        Multi-line text without a trailing newline.

    """
    now = status.read_time
    rows: list[list[str]] = []
    pollers: list[list[str]] = []
    warnings: list[str] = []
    for queue in status.queues:
        role = _ROLES.get(queue.role, "?")
        used_by = ", ".join(queue.used_by)
        if queue.used_by_count > len(queue.used_by):
            used_by += f" (+{queue.used_by_count - len(queue.used_by)} more)"
        if queue.error:
            rows.append([queue.name, role, "-", "?", "?", "?", "?", used_by])
            warnings.append(f"cannot describe task queue {queue.name}: {queue.error}")
            continue
        # The tasks its role polls, always; the other type only when something is there
        # (e.g. an activity sent to an orchestrator queue by mistake).
        main, other = ("workflow", "activity")
        if queue.role == fleet_pb2.TASK_QUEUE_ROLE_RUNNER:
            main, other = other, main
        types = [main, other] if _busy(_tasks(queue, other)) else [main]
        for kind in types:
            tasks = _tasks(queue, kind)
            rows.append(
                [
                    queue.name,
                    role,
                    kind,
                    str(len(tasks.pollers)),
                    str(tasks.backlog_count),
                    _age(tasks.backlog_age),
                    f"{tasks.tasks_add_rate:.2f}/{tasks.tasks_dispatch_rate:.2f}",
                    used_by if kind == main else "",
                ]
            )
            for poller in tasks.pollers:
                seen = format_timestamp(poller.last_access_time)
                ago = _since(now, poller.last_access_time)
                limited = 0 < poller.rate_per_second < _UNLIMITED
                rate = f"{poller.rate_per_second:g}/s" if limited else "-"
                pollers.append([queue.name, kind, poller.identity, f"{seen} ({ago})", rate])
        main_tasks = _tasks(queue, main)
        if not main_tasks.pollers and (main_tasks.backlog_count or role == "runner"):
            count = main_tasks.backlog_count
            waiting = f"; {count} task{'s' if count != 1 else ''} waiting" if count else ""
            warnings.append(f"no {role} polls {main} tasks of {queue.name}{waiting}")
    parts = [
        "Task queues:",
        _indent(
            format_table(
                ["QUEUE", "ROLE", "TASKS", "POLLERS", "BACKLOG", "AGE", "ADD/DISPATCH", "USED BY"],
                rows,
            )
        ),
        "",
        "Pollers:",
        _indent(format_table(["QUEUE", "TASKS", "IDENTITY", "LAST SEEN", "RATE"], pollers))
        if pollers
        else "  none",
        "",
        "Executions:",
        _indent(_phase_table(status)),
    ]
    stuck = status.stuck
    if stuck.count:
        threshold = format_duration(stuck.stuck_after.ToTimedelta())
        shown = ", ".join(stuck.execution_ids)
        more = stuck.count - len(stuck.execution_ids)
        if more > 0:
            shown += f" (+{more} more)"
        warnings.append(
            f"stuck? {stuck.count} RUNNING execution{'s' if stuck.count != 1 else ''} "
            f"without any event for over {threshold}: {shown}"
        )
    if warnings:
        parts += ["", *(f"WARNING: {w}" for w in warnings)]
    return "\n".join(parts)


def _tasks(queue: fleet_pb2.TaskQueueStatus, kind: str) -> fleet_pb2.TaskQueueTypeStatus:
    return queue.workflow_tasks if kind == "workflow" else queue.activity_tasks


def _busy(tasks: fleet_pb2.TaskQueueTypeStatus) -> bool:
    return bool(tasks.pollers or tasks.backlog_count)


def _phase_table(status: fleet_pb2.GetFleetStatusResponse) -> str:
    phases = [phase_name(c.phase) for c in status.agent_executions]
    rows = [
        [kind, *(str(c.count) for c in counts)]
        for kind, counts in (
            ("agent", status.agent_executions),
            ("workflow", status.workflow_executions),
        )
    ]
    return format_table(["KIND", *phases], rows)


def _age(age: Duration) -> str:
    if age.seconds == 0 and age.nanos == 0:
        return "-"
    seconds = round(age.ToTimedelta().total_seconds())
    return format_duration(timedelta(seconds=seconds)) if seconds else "<1s"


def _since(now: Timestamp, then: Timestamp) -> str:
    seconds = max(0, round((now.ToNanoseconds() - then.ToNanoseconds()) / 1e9))
    return f"{format_duration(timedelta(seconds=seconds))} ago" if seconds else "now"


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
