"""Every third-party module the code imports comes from a distribution pyproject.toml declares.

A module that only arrives as someone else's dependency disappears the day that dependency
drops it, so the shipped packages may import only the project's dependencies, and tests and
benchmarks only those plus the dev group.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("polyfleet", "orchestrator", "runner", "store")
DEV_ONLY = ("tests", "bench", "scripts")
FIRST_PARTY = {*SHIPPED, *DEV_ONLY}


def _name(requirement: str) -> str:
    """The normalized distribution name of a PEP 508 requirement."""
    bare = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", bare).lower()


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = {_name(r) for r in project["project"]["dependencies"]}
    for extra in project["project"].get("optional-dependencies", {}).values():
        runtime |= {_name(r) for r in extra}
    dev = {_name(r) for r in project["dependency-groups"]["dev"]}
    return runtime, runtime | dev


def _imports(packages: tuple[str, ...]) -> dict[str, Path]:
    """Top-level third-party modules imported by the packages, each with one importing file."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            if "v1" in path.relative_to(ROOT).parts:
                continue  # generated code imports only protobuf and grpc
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                        found.setdefault(top, path.relative_to(ROOT))
    return found


def _undeclared(packages: tuple[str, ...], declared: set[str]) -> list[str]:
    providers = importlib.metadata.packages_distributions()
    missing = []
    for module, path in sorted(_imports(packages).items()):
        dists = {_name(dist) for dist in providers.get(module, [])}
        if not dists & declared:
            missing.append(f"{module} (imported by {path}; provided by {sorted(dists)})")
    return missing


def test_shipped_packages_import_only_declared_dependencies() -> None:
    runtime, _ = _declared()
    assert _undeclared(SHIPPED, runtime) == []


def test_tests_and_benchmarks_import_only_declared_dependencies() -> None:
    _, dev = _declared()
    assert _undeclared(DEV_ONLY, dev) == []
