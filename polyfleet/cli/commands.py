"""Handlers of the definition commands: apply, agents, workflows.

Each handler takes the parsed arguments and a :class:`Console`, runs its API calls with
``asyncio.run`` and returns the process exit code. ``run`` is in :mod:`polyfleet.cli.run`,
``executions`` in :mod:`polyfleet.cli.executions`; what handlers share lives in modules named
for it (:mod:`polyfleet.cli.api`, :mod:`polyfleet.cli.errors`, :mod:`polyfleet.cli.manifests`).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

import yaml

from polyfleet.cli import api
from polyfleet.cli.api import api_address
from polyfleet.cli.errors import EXIT_OK
from polyfleet.cli.manifests import load_manifest_files, split_resources
from polyfleet.cli.output import Console, to_json
from polyfleet.cli.views import agent_table, describe_agent, describe_workflow, workflow_table
from polyfleet.manifest import Resource, agent_to_manifest, workflow_to_manifest
from polyfleet.manifest.workflow import dump_yaml, runner_notes, subflows_first
from polyfleet.v1 import agent_pb2, workflow_pb2

# --- apply ----------------------------------------------------------------------------------


def cmd_apply(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet apply -f FILE...``: create or replace agents and workflows."""
    resources = load_manifest_files(args.files)
    return asyncio.run(_apply(api_address(args), resources, console))


async def _apply(address: str, resources: Sequence[Resource], console: Console) -> int:
    # Agents first: the server checks a workflow's `call: agent` names against stored agents.
    agents, workflows = split_resources(resources)
    async with api.connect(address) as client:
        # One at a time, so each line is printed as soon as that resource is stored.
        for agent in agents:
            stored = await client.agents.apply(agent)
            print(f"agent/{stored.name} configured (version {stored.version})", file=console.out)
        # A workflow that another's `run: workflow` names goes first: the server checks it.
        for workflow in subflows_first(list(workflows)):
            done = await client.workflows.apply(workflow)
            print(f"workflow/{done.name} configured (version {done.version})", file=console.out)
            for note in runner_notes(done.document, done.resolved_functions):
                print(f"note: workflow/{done.name}: {note}", file=console.err)
    return EXIT_OK


# --- agents ---------------------------------------------------------------------------------


def cmd_agents_list(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet agents list``: every agent."""
    return asyncio.run(_agents_list(args, console))


async def _agents_list(args: argparse.Namespace, console: Console) -> int:
    async with api.connect(api_address(args)) as client:
        agents = [agent async for agent in client.agents.list_all()]
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
    async with api.connect(api_address(args)) as client:
        agent = await client.agents.get(args.name)
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
    async with api.connect(api_address(args)) as client:
        workflows = [workflow async for workflow in client.workflows.list_all()]
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
    async with api.connect(api_address(args)) as client:
        workflow = await client.workflows.get(args.name)
    if args.output == "json":
        text = to_json(workflow)
    elif args.output == "yaml":
        text = dump_yaml(workflow_to_manifest(workflow)).rstrip()
    else:
        text = describe_workflow(workflow)
    print(text, file=console.out)
    return EXIT_OK
