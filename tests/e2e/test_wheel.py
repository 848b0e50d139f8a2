"""The built wheel, installed in a fresh venv, carries the examples that `polyfleet demo` uses.

The wheel is built from this checkout with uv and installed with the locked versions of its
dependencies (most come from uv's cache; the rest from the package index). The checks run from
a directory outside the checkout, so nothing can be imported or read from the source tree. A
full demo from the wheel would take minutes; resolving and loading the examples is the part
that differs from a source checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Runs inside the installed package: where are the examples, and do they load?
PROBE = textwrap.dedent(
    """
    import json, sys
    import polyfleet
    from polyfleet.cli import dev
    from polyfleet.manifest import load_resources

    resources = [
        *load_resources(dev.default_demo_manifest()),
        *load_resources(dev.demo_workflow_manifest()),
    ]
    json.dump(
        {
            "package": polyfleet.__file__,
            "examples": str(dev.examples_dir()),
            "names": [resource.name for resource in resources],
            "prices": (dev.demo_http_dir() / "prices.json").is_file(),
            "weather_server": (dev.examples_dir() / "mcp" / "weather_server.py").is_file(),
        },
        sys.stdout,
    )
    """
)


def uv() -> str:
    """The uv that the Makefile uses: from PATH, else the copy it bootstraps into .tools/."""
    found = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    if not Path(found).is_file():
        pytest.fail("uv is not installed: run `make setup` first")
    return found


def run(*command: str | Path, cwd: Path, env: dict[str, str]) -> str:
    """Run a command to completion and return its stdout; fail with its output otherwise."""
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, (
        f"{command} exited {result.returncode}\n--- stdout\n{result.stdout}\n"
        f"--- stderr\n{result.stderr}"
    )
    return result.stdout


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_installed_wheel_finds_and_loads_its_examples(tmp_path: Path) -> None:
    # The venv of this test run must not be the one uv installs into.
    env = {
        k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}
    }
    dist, venv, outside = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere"
    outside.mkdir()

    run(uv(), "build", "--wheel", "--out-dir", dist, REPO, cwd=outside, env=env)
    (wheel,) = dist.glob("polyfleet-*.whl")
    requirements = tmp_path / "requirements.txt"
    run(
        uv(),
        "export",
        "--frozen",
        "--no-dev",
        "--no-emit-project",
        "--no-hashes",
        "--output-file",
        requirements,
        cwd=REPO,
        env=env,
    )
    run(uv(), "venv", "--python", sys.executable, venv, cwd=outside, env=env)
    python = venv / "bin" / "python"
    run(uv(), "pip", "install", "--python", python, "-r", requirements, wheel, cwd=outside, env=env)

    found = json.loads(run(python, "-c", PROBE, cwd=outside, env=env))
    # The examples live inside the installed package, not in this checkout.
    package = Path(found["package"]).parent
    assert package.is_relative_to(venv), found
    assert Path(found["examples"]) == package / "examples", found
    assert found["names"] == ["assistant", "order-flow"], found
    assert found["prices"] and found["weather_server"], found

    # The installed command line offers the packaged manifest as the demo's default (argparse
    # wraps the long path at its hyphens, hence the comparison without whitespace).
    usage = run(venv / "bin" / "polyfleet", "demo", "--help", cwd=outside, env=env)
    assert str(package / "examples" / "agents" / "assistant.yaml") in "".join(usage.split())
