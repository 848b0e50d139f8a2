"""`polyfleet demo` end to end: real Temporal dev server, orchestrator and runner processes.

The demo starts the whole fleet on free ports, applies the example assistant, runs it on
"What is polyfleet?" following its progress live, and stops every process again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from polyfleet.manifest import load_manifests

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "agents" / "assistant.yaml"
DEMO_QUESTION = "What is polyfleet?"


def expected_answer() -> str:
    """The reply of the example agent's rule that answers the demo question."""
    (agent,) = load_manifests(EXAMPLE)
    rule = next(r for r in agent.model.scripted.rules if re.search(r.pattern, DEMO_QUESTION))
    return rule.reply


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes whose command line or environment mentions text."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state in {"Z", "X"}:
                continue
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline or text.encode() in environ:
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{proc.name}: {command}")
    return found


def log_tails(data_dir: Path, lines: int = 40) -> str:
    """The end of every child's log, to explain a failure."""
    parts = []
    for log in sorted((data_dir / "logs").glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log.name}\n" + "\n".join(tail))
    return "\n".join(parts)


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_demo_runs_the_assistant_live_and_leaves_no_process(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    answer = expected_answer()

    try:
        result = subprocess.run(
            [sys.executable, "-m", "polyfleet.cli", "demo", "--data-dir", str(data_dir)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    finally:
        survivors = processes_mentioning(str(data_dir))

    report = (
        f"exit code {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n"
        f"{result.stderr}\n{log_tails(data_dir)}"
    )
    assert result.returncode == 0, report
    out = result.stdout
    assert "agent/assistant configured (version" in out, report
    assert re.search(r"^execution/\S+ created$", out, re.MULTILINE), report
    assert "● RUNNING" in out.splitlines(), report
    assert "● COMPLETED" in out.splitlines(), report
    # The streamed transcript line holds the whole answer, whatever the chunking.
    streamed = [line for line in out.splitlines() if line.startswith("assistant: ")]
    assert any(" ".join(answer.split()) in " ".join(line.split()) for line in streamed), report
    assert f"Final answer: {answer}" in out, report
    assert out.index("● RUNNING") < out.index("● COMPLETED") < out.index("Final answer:")
    assert survivors == [], report
