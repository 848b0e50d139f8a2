"""Reading manifests for the CLI: files, directories and stdin, split into agents and workflows.

Shared by ``apply`` (:mod:`polyfleet.cli.commands`) and ``dev``/``demo``
(:mod:`polyfleet.cli.dev`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from polyfleet.cli.errors import CliError
from polyfleet.manifest import ManifestError, Resource, load_resources, parse_resources
from polyfleet.v1 import agent_pb2, workflow_pb2

_MANIFEST_SUFFIXES = (".yaml", ".yml")


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
