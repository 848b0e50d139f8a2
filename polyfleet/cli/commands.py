"""Handlers of the API commands: apply, run, executions, agents.

Each handler takes the parsed arguments and a :class:`Console`, runs its API calls with
``asyncio.run`` and returns the process exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import grpc
import yaml
from google.protobuf.json_format import MessageToDict

from polyfleet.cli import api
from polyfleet.cli.errors import EXIT_EXECUTION_FAILED, EXIT_OK, CliError
from polyfleet.cli.output import Console, format_error, is_terminal, phase_name, to_json
from polyfleet.cli.progress import ProgressPrinter, final_answer
from polyfleet.cli.views import agent_table, describe_agent, describe_execution, execution_table
from polyfleet.config import ApiSettings
from polyfleet.manifest import ManifestError, agent_to_manifest, load_manifests, parse_manifests
from polyfleet.v1 import agent_execution_pb2, agent_pb2, common_pb2

_MANIFEST_SUFFIXES = (".yaml", ".yml")
# How the API names an execution in messages, e.g. ExecuteAgent's DEADLINE_EXCEEDED.
_EXECUTION_ID_RE = re.compile(r"\b(aex-[A-Za-z0-9_-]+)")


def api_address(args: argparse.Namespace) -> str:
    """Return the API address: ``--address`` if given, else ``POLYFLEET_API_ADDRESS``.

    Args:
        args: Parsed arguments.

    Returns:
        ``host:port``.

    """
    address: str | None = args.address
    return address or ApiSettings().api_address


def exit_code_for(execution: agent_execution_pb2.AgentExecution) -> int:
    """Map an execution's final phase to the CLI's exit code.

    Args:
        execution: A terminal execution.

    Returns:
        0 when COMPLETED, 1 when FAILED or CANCELLED.

    """
    if execution.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED:
        return EXIT_OK
    return EXIT_EXECUTION_FAILED


def load_agent_files(paths: Sequence[str], stdin: TextIO | None = None) -> list[agent_pb2.Agent]:
    """Load the manifests named on the command line, all of them before any is applied.

    ``./`` and ``../`` paths of stdio MCP servers are made absolute against each file's
    directory, or the working directory for stdin, because the runner that starts the
    server has a working directory of its own.

    Args:
        paths: Files, directories (their ``*.yaml`` and ``*.yml`` files) or ``-`` for stdin.
        stdin: Stream read for ``-``; ``sys.stdin`` if None.

    Returns:
        Every agent, in command-line order.

    Raises:
        CliError: A manifest is invalid; the message names the file and field.

    """
    agents: list[agent_pb2.Agent] = []
    try:
        for name in paths:
            if name == "-":
                text = (stdin or sys.stdin).read()
                agents.extend(parse_manifests(text, "<stdin>", base_dir=Path.cwd()))
                continue
            path = Path(name)
            if not path.is_dir():
                agents.extend(load_manifests(path))
                continue
            files = sorted(p for p in path.iterdir() if p.suffix in _MANIFEST_SUFFIXES)
            if not files:
                raise ManifestError(path, None, "directory holds no .yaml or .yml files")
            for file in files:
                agents.extend(load_manifests(file))
    except ManifestError as exc:
        raise CliError(str(exc)) from exc
    return agents


# --- apply ----------------------------------------------------------------------------------


def cmd_apply(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet apply -f FILE...``: create or replace agents from manifests."""
    agents = load_agent_files(args.files)
    return asyncio.run(_apply(api_address(args), agents, console))


async def _apply(address: str, agents: Sequence[agent_pb2.Agent], console: Console) -> int:
    async with api.connect(address) as clients:
        # One at a time, so each line is printed as soon as that agent is stored.
        for agent in agents:
            (stored,) = await api.apply_agents(clients.agents, [agent])
            print(f"agent/{stored.name} configured (version {stored.version})", file=console.out)
    return EXIT_OK


# --- run ------------------------------------------------------------------------------------


def cmd_run_agent(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet run agent NAME --message TEXT``: start an execution, maybe follow it."""
    if args.timeout is not None and not args.wait:
        raise CliError("--timeout applies only with --wait")
    return asyncio.run(_run_agent(args, console))


async def _run_agent(args: argparse.Namespace, console: Console) -> int:
    as_json = args.output == "json"
    async with api.connect(api_address(args)) as clients:
        if args.wait:
            return await _execute(clients, args, console)
        execution = await api.create_agent_execution(
            clients.executions, args.name, args.message, args.session or ""
        )
        if not args.follow:
            print(to_json(execution) if as_json else execution.id, file=console.out)
            return EXIT_OK
        # With JSON output, stdout carries only the final document; progress goes to stderr.
        progress = console.err if as_json else console.out
        print(f"execution/{execution.id} created", file=progress)
        final = await _follow(clients, execution.id, ProgressPrinter(progress), console)
        if as_json:
            print(to_json(final), file=console.out)
        return exit_code_for(final)


async def _execute(clients: api.Clients, args: argparse.Namespace, console: Console) -> int:
    # The synchronous ExecuteAgent: one call, the server waits for the terminal phase.
    try:
        final = await api.execute_agent(
            clients.executions, args.name, args.message, args.session or "", args.timeout
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
        raise _still_running(exc, args.name) from exc
    if args.output == "json":
        print(to_json(final), file=console.out)
    else:
        _print_outcome(final, console)
    return exit_code_for(final)


def _still_running(exc: grpc.aio.AioRpcError, agent: str) -> CliError:
    details = exc.details() or "the execution did not finish in time"
    found = _EXECUTION_ID_RE.search(details)
    if found:
        hint = f"it keeps running; follow it with: polyfleet executions watch {found.group(1)}"
    else:
        # The client's own deadline fired first, so no server message names the execution.
        hint = (
            "it may still be running; find it with: "
            f"polyfleet executions list --agent {agent} --phase running"
        )
    return CliError(f"DEADLINE_EXCEEDED: {details}", hint=hint)


def _print_outcome(execution: agent_execution_pb2.AgentExecution, console: Console) -> None:
    # stdout holds only the answer, so `--wait` composes with pipes; the rest goes to stderr.
    status = execution.status
    if status.phase == common_pb2.EXECUTION_PHASE_COMPLETED:
        if status.HasField("output"):
            output = MessageToDict(status.output)
            text = json.dumps(output, indent=2, ensure_ascii=False, sort_keys=True)
        else:
            text = final_answer(status)
        print(text, file=console.out)
        return
    detail = ""
    if status.HasField("error"):
        detail = f": {format_error(status.error)}"
    print(f"execution/{execution.id} {phase_name(status.phase)}{detail}", file=console.err)


async def _follow(
    clients: api.Clients,
    execution_id: str,
    printer: ProgressPrinter,
    console: Console,
    after_sequence: int = 0,
) -> agent_execution_pb2.AgentExecution:
    try:
        return await api.watch_agent_execution(
            clients.executions, execution_id, printer, after_sequence=after_sequence
        )
    except asyncio.CancelledError:
        # Ctrl-C stops watching, not the execution; say how to pick it up again.
        printer.end_line()
        print(
            f"stopped watching; {execution_id} keeps running "
            f"(polyfleet executions watch {execution_id})",
            file=console.err,
        )
        raise


# --- executions -----------------------------------------------------------------------------


def cmd_executions_get(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet executions get ID``: show one execution."""
    return asyncio.run(_executions_get(args, console))


async def _executions_get(args: argparse.Namespace, console: Console) -> int:
    async with api.connect(api_address(args)) as clients:
        execution = await api.get_agent_execution(clients.executions, args.id)
    text = to_json(execution) if args.output == "json" else describe_execution(execution)
    print(text, file=console.out)
    return EXIT_OK


def cmd_executions_list(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet executions list``: one page of executions, filtered."""
    return asyncio.run(_executions_list(args, console))


async def _executions_list(args: argparse.Namespace, console: Console) -> int:
    request = agent_execution_pb2.ListAgentExecutionsRequest(
        page_size=args.page_size or 0,
        page_token=args.page_token or "",
        agent=args.agent or "",
        session_id=args.session or "",
        phase=args.phase or common_pb2.EXECUTION_PHASE_UNSPECIFIED,
    )
    async with api.connect(api_address(args)) as clients:
        response = await clients.executions.ListAgentExecutions(request, timeout=api.UNARY_TIMEOUT)
    if args.output == "json":
        print(to_json(response), file=console.out)
        return EXIT_OK
    if response.executions:
        print(execution_table(response.executions), file=console.out)
    else:
        print("No executions found.", file=console.err)
    if response.next_page_token:
        print(f"next page token: {response.next_page_token}", file=console.out)
    return EXIT_OK


def cmd_executions_watch(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet executions watch ID``: follow an execution live until it ends."""
    return asyncio.run(_executions_watch(args, console))


async def _executions_watch(args: argparse.Namespace, console: Console) -> int:
    async with api.connect(api_address(args)) as clients:
        final = await _follow(
            clients, args.id, ProgressPrinter(console.out), console, after_sequence=args.after
        )
    return exit_code_for(final)


def cmd_executions_cancel(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet executions cancel ID``: ask for an execution to be cancelled."""
    return asyncio.run(_executions_cancel(args, console))


async def _executions_cancel(args: argparse.Namespace, console: Console) -> int:
    async with api.connect(api_address(args)) as clients:
        execution = await api.cancel_agent_execution(clients.executions, args.id)
        if args.wait and not is_terminal(execution.status.phase):
            execution = await api.wait_until_terminal(clients.executions, args.id, args.timeout)
    if args.output == "json":
        print(to_json(execution), file=console.out)
    else:
        print(_cancel_summary(execution), file=console.out)
    return EXIT_OK


def _cancel_summary(execution: agent_execution_pb2.AgentExecution) -> str:
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


# --- agents ---------------------------------------------------------------------------------


def cmd_agents_list(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet agents list``: every agent."""
    return asyncio.run(_agents_list(args, console))


async def _agents_list(args: argparse.Namespace, console: Console) -> int:
    async with api.connect(api_address(args)) as clients:
        agents = await api.list_agents(clients.agents)
    if args.output == "json":
        print(to_json(agent_pb2.ListAgentsResponse(agents=agents)), file=console.out)
    elif agents:
        print(agent_table(agents), file=console.out)
    else:
        print("No agents found. Create one with 'polyfleet apply -f FILE'.", file=console.err)
    return EXIT_OK


def cmd_agents_get(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet agents get NAME``: one agent's definition."""
    return asyncio.run(_agents_get(args, console))


async def _agents_get(args: argparse.Namespace, console: Console) -> int:
    async with api.connect(api_address(args)) as clients:
        agent = await clients.agents.GetAgent(
            agent_pb2.GetAgentRequest(name=args.name), timeout=api.UNARY_TIMEOUT
        )
    if args.output == "json":
        text = to_json(agent)
    elif args.output == "yaml":
        text = yaml.safe_dump(agent_to_manifest(agent), sort_keys=False).rstrip()
    else:
        text = describe_agent(agent)
    print(text, file=console.out)
    return EXIT_OK
