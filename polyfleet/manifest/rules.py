"""The Agent rules of a manifest: the kernel's one rule set, mapped to manifest fields.

The rules themselves are :func:`polyfleet.agent_rules.agent_problems`, over the Agent
message, the same the API applies (the API is their authority). This module converts a
schema-valid manifest to that message, runs them, and maps each problem's proto path to
the manifest's path as the YAML document spells it (``metadata.name``, camelCase keys
under ``spec``, list indexes, map keys as written), so the loader can name the line.
"""

from __future__ import annotations

from polyfleet.agent_rules import PYTHON_PLACEHOLDER, Key, Path, agent_problems
from polyfleet.manifest.convert import agent_message
from polyfleet.manifest.schema import AgentManifest

Loc = tuple[int | str, ...]
Problem = tuple[Loc, str]

__all__ = ["PYTHON_PLACEHOLDER", "Loc", "Problem", "manifest_loc", "problems"]

# Agent fields that a manifest keeps under metadata; every other one is under spec.
_METADATA_FIELDS = frozenset({"name", "labels"})


def problems(manifest: AgentManifest) -> list[Problem]:
    """Check a manifest with the API's rules.

    Args:
        manifest: A manifest that passed schema validation.

    Returns:
        Every problem found, by manifest path; empty when the manifest is valid.

    """
    return [
        (manifest_loc(path), message) for path, message in agent_problems(agent_message(manifest))
    ]


def manifest_loc(path: Path) -> Loc:
    """The manifest path of an Agent message's field path.

    Args:
        path: In proto terms, e.g. ``("mcp_servers", 0, "stdio", "env", Key("TOKEN"))``.

    Returns:
        As the manifest spells it, e.g. ``("spec", "mcpServers", 0, "stdio", "env", "TOKEN")``.

    """
    head = "metadata" if path and path[0] in _METADATA_FIELDS else "spec"
    return (head, *(_manifest_item(item) for item in path))


def _manifest_item(item: int | str) -> int | str:
    if isinstance(item, int):
        return item
    if isinstance(item, Key):
        return str(item)
    first, *rest = item.split("_")
    return first + "".join(word.capitalize() for word in rest)
