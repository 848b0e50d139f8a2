"""Handlers of ``polyfleet executions get|list|watch|changes|cancel``, for both kinds.

``get``, ``watch`` and ``cancel`` take an ID and ask the service its prefix names
(``aex-`` agent, ``wex-`` workflow); ``list`` lists agent executions, or workflow
executions with ``--workflow NAME`` or ``--kind workflow``; ``changes`` follows every
execution's changes (FleetService.WatchExecutions).
"""

from __future__ import annotations

import argparse
import asyncio

from google.protobuf import json_format

from polyfleet.cli import api, follow
from polyfleet.cli.api import api_address
from polyfleet.cli.errors import EXIT_OK, CliError, exit_code_for
from polyfleet.cli.output import Console, to_json
from polyfleet.cli.progress import ProgressPrinter
from polyfleet.cli.views import (
    describe_execution,
    describe_workflow_execution,
    execution_table,
    workflow_execution_table,
)
from polyfleet.client import WaitTimeoutError
from polyfleet.contract import Execution, is_terminal, phase_name
from polyfleet.v1 import agent_execution_pb2, common_pb2, fleet_pb2, workflow_execution_pb2


def cmd_executions_get(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet executions get ID``: show one execution."""
    return asyncio.run(_executions_get(args, console))


async def _executions_get(args: argparse.Namespace, console: Console) -> int:
    async with api.connect(api_address(args)) as client:
        execution = await client.get(args.id)
    if args.output == "json":
        text = to_json(execution)
    elif isinstance(execution, workflow_execution_pb2.WorkflowExecution):
        text = describe_workflow_execution(execution)
    else:
        text = describe_execution(execution)
    print(text, file=console.out)
    return EXIT_OK


def cmd_executions_list(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet executions list``: one page of executions of one kind, filtered."""
    workflows = bool(args.workflow) or args.kind == "workflow"
    if workflows and (args.agent or args.session):
        raise CliError("--agent and --session filter agent executions, not workflow executions")
    if args.kind == "agent" and args.workflow:
        raise CliError("--workflow filters workflow executions, not agent executions")
    if workflows:
        return asyncio.run(_workflow_executions_list(args, console))
    return asyncio.run(_agent_executions_list(args, console))


async def _agent_executions_list(args: argparse.Namespace, console: Console) -> int:
    request = agent_execution_pb2.ListAgentExecutionsRequest(
        page_size=args.page_size or 0,
        page_token=args.page_token or "",
        agent=args.agent or "",
        session_id=args.session or "",
        phase=args.phase or common_pb2.EXECUTION_PHASE_UNSPECIFIED,
        labels=dict(args.label or []),
    )
    _set_range(request, args)
    async with api.connect(api_address(args)) as client:
        response = await client.agent_executions.list(request)
    table = execution_table(response.executions) if response.executions else ""
    _print_page(console, args.output, response, table)
    return EXIT_OK


async def _workflow_executions_list(args: argparse.Namespace, console: Console) -> int:
    request = workflow_execution_pb2.ListWorkflowExecutionsRequest(
        page_size=args.page_size or 0,
        page_token=args.page_token or "",
        workflow=args.workflow or "",
        phase=args.phase or common_pb2.EXECUTION_PHASE_UNSPECIFIED,
        labels=dict(args.label or []),
    )
    _set_range(request, args)
    async with api.connect(api_address(args)) as client:
        response = await client.workflow_executions.list(request)
    executions = response.executions
    table = workflow_execution_table(executions) if executions else ""
    _print_page(console, args.output, response, table)
    return EXIT_OK


def _set_range(
    request: agent_execution_pb2.ListAgentExecutionsRequest
    | workflow_execution_pb2.ListWorkflowExecutionsRequest,
    args: argparse.Namespace,
) -> None:
    if args.created_after:
        request.created_after.FromDatetime(args.created_after)
    if args.created_before:
        request.created_before.FromDatetime(args.created_before)


def _print_page(
    console: Console,
    output: str,
    response: (
        agent_execution_pb2.ListAgentExecutionsResponse
        | workflow_execution_pb2.ListWorkflowExecutionsResponse
    ),
    table: str,
) -> None:
    if output == "json":
        print(to_json(response), file=console.out)
        return
    if table:
        print(table, file=console.out)
    else:
        print("No executions found.", file=console.err)
    if response.next_page_token:
        print(f"next page token: {response.next_page_token}", file=console.out)


def cmd_executions_watch(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet executions watch ID``: follow an execution live until it ends."""
    return asyncio.run(_executions_watch(args, console))


async def _executions_watch(args: argparse.Namespace, console: Console) -> int:
    async with api.connect(api_address(args)) as client:
        final = await follow.follow(
            client.executions(args.id),
            args.id,
            ProgressPrinter(console.out),
            console.err,
            after_sequence=args.after,
        )
    return exit_code_for(final)


def cmd_executions_changes(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet executions changes``: one line per change of any execution, live."""
    return asyncio.run(_executions_changes(args, console))


async def _executions_changes(args: argparse.Namespace, console: Console) -> int:
    printed = 0
    async with api.connect(api_address(args)) as client:
        async for change in client.fleet.watch_executions(args.after):
            if args.output == "json":
                line = json_format.MessageToJson(change, indent=None)
            else:
                line = change_line(change)
            print(line, file=console.out, flush=True)
            printed += 1
            if printed == args.limit:
                break
    return EXIT_OK


def change_line(change: fleet_pb2.ExecutionChange) -> str:
    """``SEQUENCE TYPE ID agent/NAME|workflow/NAME PHASE``, or a RESET's advice."""
    kind = fleet_pb2.ExecutionChangeType.Name(change.type).removeprefix("EXECUTION_CHANGE_TYPE_")
    if change.HasField("agent_execution"):
        execution: Execution = change.agent_execution
        definition = f"agent/{change.agent_execution.agent}"
    elif change.HasField("workflow_execution"):
        execution = change.workflow_execution
        definition = f"workflow/{change.workflow_execution.workflow}"
    else:
        return f"{change.sequence} {kind} (changes were missed: list the executions again)"
    phase = phase_name(execution.status.phase)
    return f"{change.sequence} {kind} {execution.id} {definition} {phase}"


def cmd_executions_cancel(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet executions cancel ID``: ask for an execution to be cancelled."""
    return asyncio.run(_executions_cancel(args, console))


async def _executions_cancel(args: argparse.Namespace, console: Console) -> int:
    async with api.connect(api_address(args)) as client:
        execution = await client.cancel(args.id)
        if args.wait and not is_terminal(execution.status.phase):
            try:
                execution = await client.wait(args.id, args.timeout)
            except WaitTimeoutError as exc:
                raise CliError(
                    str(exc), hint=f"follow it with: polyfleet executions watch {args.id}"
                ) from exc
    if args.output == "json":
        print(to_json(execution), file=console.out)
    else:
        print(_cancel_summary(execution), file=console.out)
    return EXIT_OK


def _cancel_summary(execution: Execution) -> str:
    phase = execution.status.phase
    name = f"execution/{execution.id}"
    if phase == common_pb2.EXECUTION_PHASE_CANCELLED:
        return f"{name} cancelled (phase CANCELLED)"
    if is_terminal(phase):
        return f"{name} was not cancelled: it ended first (phase {phase_name(phase)})"
    # The workflow is cancelled; the phase follows once the runner has stopped.
    return (
        f"{name} cancel requested (phase {phase_name(phase)}); "
        f"follow it with: polyfleet executions watch {execution.id}"
    )
