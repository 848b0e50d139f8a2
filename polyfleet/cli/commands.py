"""Handlers of the definition commands: apply, agents, workflows; and what handlers share.

Each handler takes the parsed arguments and a :class:`Console`, runs its API calls with
``asyncio.run`` and returns the process exit code. ``run`` is in :mod:`polyfleet.cli.run`,
``executions`` in :mod:`polyfleet.cli.executions`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import yaml

from polyfleet.cli import api
from polyfleet.cli.errors import EXIT_EXECUTION_FAILED, EXIT_OK, CliError
from polyfleet.cli.output import Console, Execution, to_json
from polyfleet.cli.views import agent_table, describe_agent, describe_workflow, workflow_table
from polyfleet.config import ApiSettings
from polyfleet.manifest import (
    ManifestError,
    Resource,
    agent_to_manifest,
    load_resources,
    parse_resources,
    workflow_to_manifest,
)
from polyfleet.manifest.workflow import dump_yaml
from polyfleet.v1 import agent_pb2, common_pb2, workflow_pb2

_MANIFEST_SUFFIXES = (".yaml", ".yml")


def api_address(args: argparse.Namespace) -> str:
    """Return the API address: ``--address`` if given, else ``POLYFLEET_API_ADDRESS``.

    Args:
        args: Parsed arguments.

    Returns:
        ``host:port``.

    """
    address: str | None = args.address
    return address or ApiSettings().api_address


def exit_code_for(execution: Execution) -> int:
    """Map an execution's final phase to the CLI's exit code.

    Args:
        execution: A terminal agent or workflow execution.

    Returns:
        0 when COMPLETED, 1 when FAILED or CANCELLED.

    """
    if execution.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED:
        return EXIT_OK
    return EXIT_EXECUTION_FAILED


def load_manifest_files(paths: Sequence[str], stdin: TextIO | None = None) -> list[Resource]:
    """Load the manifests named on the command line, all of them before any is applied.

    ``./`` and ``../`` paths of stdio MCP servers are made absolute against each file's
    directory, or the working directory for stdin, because the runner that starts the
    server has a working directory of its own; a Workflow's ``documentFile`` is read
    relative to the same directory. Workflow documents are validated as the runtime does.

    Args:
        paths: Files, directories (their ``*.yaml`` and ``*.yml`` files) or ``-`` for stdin.
        stdin: Stream read for ``-``; ``sys.stdin`` if None.

    Returns:
        Every agent and workflow, in command-line order.

    Raises:
        CliError: A manifest is invalid; the message names the file and field.

    """
    resources: list[Resource] = []
    try:
        for name in paths:
            if name == "-":
                text = (stdin or sys.stdin).read()
                resources.extend(parse_resources(text, "<stdin>", base_dir=Path.cwd()))
                continue
            path = Path(name)
            if not path.is_dir():
                resources.extend(load_resources(path))
                continue
            files = sorted(p for p in path.iterdir() if p.suffix in _MANIFEST_SUFFIXES)
            if not files:
                raise ManifestError(path, None, "directory holds no .yaml or .yml files")
            for file in files:
                resources.extend(load_resources(file))
    except ManifestError as exc:
        raise CliError(str(exc)) from exc
    return resources


def split_resources(
    resources: Sequence[Resource],
) -> tuple[list[agent_pb2.Agent], list[workflow_pb2.Workflow]]:
    """Separate agents from workflows, keeping the order within each.

    Args:
        resources: Loaded manifests.

    Returns:
        The agents and the workflows.

    """
    agents = [r for r in resources if isinstance(r, agent_pb2.Agent)]
    workflows = [r for r in resources if isinstance(r, workflow_pb2.Workflow)]
    return agents, workflows


# --- apply ----------------------------------------------------------------------------------


def cmd_apply(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet apply -f FILE...``: create or replace agents and workflows."""
    resources = load_manifest_files(args.files)
    return asyncio.run(_apply(api_address(args), resources, console))


async def _apply(address: str, resources: Sequence[Resource], console: Console) -> int:
    # Agents first: the server checks a workflow's `call: agent` names against stored agents.
    agents, workflows = split_resources(resources)
    async with api.connect(address) as clients:
        # One at a time, so each line is printed as soon as that resource is stored.
        for agent in agents:
            (stored,) = await api.apply_agents(clients.agents, [agent])
            print(f"agent/{stored.name} configured (version {stored.version})", file=console.out)
        for workflow in workflows:
            (done,) = await api.apply_workflows(clients.workflows, [workflow])
            print(f"workflow/{done.name} configured (version {done.version})", file=console.out)
    return EXIT_OK


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


# --- workflows ------------------------------------------------------------------------------


def cmd_workflows_list(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet workflows list``: every workflow."""
    return asyncio.run(_workflows_list(args, console))


async def _workflows_list(args: argparse.Namespace, console: Console) -> int:
    async with api.connect(api_address(args)) as clients:
        workflows = await api.list_workflows(clients.workflows)
    if args.output == "json":
        print(to_json(workflow_pb2.ListWorkflowsResponse(workflows=workflows)), file=console.out)
    elif workflows:
        print(workflow_table(workflows), file=console.out)
    else:
        print("No workflows found. Create one with 'polyfleet apply -f FILE'.", file=console.err)
    return EXIT_OK


def cmd_workflows_get(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet workflows get NAME``: one workflow's definition and document."""
    return asyncio.run(_workflows_get(args, console))


async def _workflows_get(args: argparse.Namespace, console: Console) -> int:
    async with api.connect(api_address(args)) as clients:
        workflow = await clients.workflows.GetWorkflow(
            workflow_pb2.GetWorkflowRequest(name=args.name), timeout=api.UNARY_TIMEOUT
        )
    if args.output == "json":
        text = to_json(workflow)
    elif args.output == "yaml":
        text = dump_yaml(workflow_to_manifest(workflow)).rstrip()
    else:
        text = describe_workflow(workflow)
    print(text, file=console.out)
    return EXIT_OK
