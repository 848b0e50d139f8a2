"""Handlers of ``polyfleet run agent`` and ``polyfleet run workflow``.

Both kinds run the same way: without a mode the new execution's ID is printed; ``--follow``
streams its progress until it ends; ``--wait`` makes one synchronous Execute call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

import grpc

from polyfleet.cli import api, follow
from polyfleet.cli.api import api_address
from polyfleet.cli.errors import EXIT_OK, CliError, exit_code_for
from polyfleet.cli.output import Console, format_error, to_json, value_json
from polyfleet.cli.progress import ProgressPrinter, final_answer
from polyfleet.client import Client, PolyfleetError
from polyfleet.client.executions import AgentExecutions, WorkflowExecutions
from polyfleet.contract import Execution, phase_name
from polyfleet.structs import struct_to_dict
from polyfleet.v1 import common_pb2, workflow_execution_pb2

_STRATEGIES = {
    "reject": common_pb2.MULTITASK_STRATEGY_REJECT,
    "enqueue": common_pb2.MULTITASK_STRATEGY_ENQUEUE,
    "interrupt": common_pb2.MULTITASK_STRATEGY_INTERRUPT,
}


def cmd_run_agent(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet run agent NAME --message TEXT``: start an execution, maybe follow it."""
    _check_timeout(args)

    request = AgentExecutions.request(
        args.name,
        args.message,
        session_id=args.session or "",
        priority=args.priority or 0,
        request_id=args.request_id or "",
        strategy=_STRATEGIES.get(args.strategy or "", common_pb2.MULTITASK_STRATEGY_UNSPECIFIED),
    )

    async def create(client: Client) -> Execution:
        return await client.agent_executions.create_from(request)

    async def execute(client: Client) -> Execution:
        return await client.agent_executions.execute(request, args.timeout)

    return asyncio.run(_run(args, console, create, execute, "--agent"))


def cmd_run_workflow(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet run workflow NAME [--input JSON|@FILE]``: start an execution, maybe follow it."""
    _check_timeout(args)
    workflow_input = parse_input(args.input)

    request = WorkflowExecutions.request(args.name, workflow_input)

    async def create(client: Client) -> Execution:
        return await client.workflow_executions.create_from(request)

    async def execute(client: Client) -> Execution:
        return await client.workflow_executions.execute(request, args.timeout)

    return asyncio.run(_run(args, console, create, execute, "--workflow"))


def parse_input(text: str | None, stdin: TextIO | None = None) -> dict[str, Any] | None:
    """Read a workflow's ``--input``: JSON text, ``@FILE`` or ``@-`` for stdin.

    Args:
        text: The option's value; None when it was not given.
        stdin: Stream read for ``@-``; ``sys.stdin`` if None.

    Returns:
        The input object, or None when there is none.

    Raises:
        CliError: The file cannot be read, the text is not JSON, or not a JSON object.

    """
    if text is None:
        return None
    source = "--input"
    raw = text
    if text.startswith("@"):
        name = text[1:]
        source = f"--input {text}"
        if name == "-":
            raw = (stdin or sys.stdin).read()
        else:
            try:
                raw = Path(name).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CliError(f"{source}: cannot read the file: {exc}") from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{source}: not valid JSON: {exc}",
            hint='quote the JSON for the shell, e.g. --input \'{"name": "ada"}\', '
            "or read it from a file with --input @input.json",
        ) from exc
    if not isinstance(data, dict):
        kind = "an array" if isinstance(data, list) else f"a {type(data).__name__} value"
        raise CliError(f"{source}: the workflow input must be a JSON object, not {kind}")
    return data


def _check_timeout(args: argparse.Namespace) -> None:
    if args.timeout is not None and not args.wait:
        raise CliError("--timeout applies only with --wait")


async def _run(
    args: argparse.Namespace,
    console: Console,
    create: Callable[[Client], Awaitable[Execution]],
    execute: Callable[[Client], Awaitable[Execution]],
    list_filter: str,
) -> int:
    as_json = args.output == "json"
    async with api.connect(api_address(args)) as client:
        if args.wait:
            # The synchronous Execute call: the server waits for the terminal phase.
            try:
                final = await execute(client)
            except PolyfleetError as exc:
                if exc.code != grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise
                raise still_running(exc, f"{list_filter} {args.name}") from exc
            if as_json:
                print(to_json(final), file=console.out)
            else:
                _print_outcome(final, console)
            return exit_code_for(final)
        execution = await create(client)
        if not args.follow:
            print(to_json(execution) if as_json else execution.id, file=console.out)
            return EXIT_OK
        # With JSON output, stdout carries only the final document; progress goes to stderr.
        progress = console.err if as_json else console.out
        print(f"execution/{execution.id} created", file=progress)
        calls = client.executions(execution.id)
        final = await follow.follow(calls, execution.id, ProgressPrinter(progress), console.err)
        if as_json:
            print(to_json(final), file=console.out)
        return exit_code_for(final)


def still_running(exc: PolyfleetError, list_filter: str) -> CliError:
    """Describe an Execute call's DEADLINE_EXCEEDED: the execution keeps running.

    Args:
        exc: The error of the call.
        list_filter: Options of ``executions list`` that find the execution when the
            error does not name it, e.g. ``--workflow order-flow``.

    Returns:
        The error, with a hint how to follow the execution.

    """
    details = exc.details or "the execution did not finish in time"
    # The server names the execution in the error's ErrorInfo, as data.
    execution_id = exc.execution_id
    if execution_id:
        hint = f"it keeps running; follow it with: polyfleet executions watch {execution_id}"
    else:
        # The client's own deadline fired first, so no server message names the execution.
        hint = (
            "it may still be running; find it with: "
            f"polyfleet executions list {list_filter} --phase running"
        )
    return CliError(f"DEADLINE_EXCEEDED: {details}", hint=hint)


def _print_outcome(execution: Execution, console: Console) -> None:
    # stdout holds only the result, so `--wait` composes with pipes; the rest goes to stderr.
    status = execution.status
    if status.phase == common_pb2.EXECUTION_PHASE_COMPLETED:
        print(_result(execution), file=console.out)
        return
    detail = ""
    if status.HasField("error"):
        detail = f": {format_error(status.error)}"
    print(f"execution/{execution.id} {phase_name(status.phase)}{detail}", file=console.err)


def _result(execution: Execution) -> str:
    if isinstance(execution, workflow_execution_pb2.WorkflowExecution):
        # Always JSON, so a string output is quoted and every output parses.
        return value_json(execution.status.output, indent=2)
    status = execution.status
    if status.HasField("output"):
        output = struct_to_dict(status.output)
        return json.dumps(output, indent=2, ensure_ascii=False, sort_keys=True)
    return final_answer(status)
