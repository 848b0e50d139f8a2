"""`polyfleet demo` end to end: real Temporal dev server, orchestrator and runner processes.

The demo starts the whole fleet on free ports, applies the example assistant, talks to it
twice in one session following the progress live ("What is polyfleet?", then "What's the
weather in Paris?", which makes the scripted model call the example MCP server's
get_weather tool), then runs the example workflow order-flow, whose `call: http` task reads
examples/http/prices.json from the demo's server on 127.0.0.1 and whose `call: agent` task
asks the assistant, following every task live; and it stops every process again.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from polyfleet.manifest import load_manifests

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "agents" / "assistant.yaml"
WEATHER_SERVER = REPO / "examples" / "mcp" / "weather_server.py"
PRICES = REPO / "examples" / "http" / "prices.json"
DEMO_QUESTION = "What is polyfleet?"
WEATHER_QUESTION = "What's the weather in Paris?"


def expected_answer(question: str = DEMO_QUESTION) -> str:
    """The reply of the example agent's rule that answers a question."""
    (agent,) = load_manifests(EXAMPLE)
    rule = next(r for r in agent.model.scripted.rules if re.search(r.pattern, question))
    return rule.reply


def weather_in_paris() -> str:
    """What the example MCP server's get_weather tool answers for Paris."""
    spec = importlib.util.spec_from_file_location("polyfleet_e2e_weather", WEATHER_SERVER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    answer: Any = module.get_weather("Paris")
    return str(answer)


def order_total(order: dict[str, Any]) -> float:
    """The total of an order at the prices of examples/http/prices.json."""
    prices = json.loads(PRICES.read_text(encoding="utf-8"))["prices"]
    return float(sum(item["qty"] * prices[item["sku"]] for item in order["items"]))


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
def test_demo_talks_to_the_assistant_live_and_leaves_no_process(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    answer = expected_answer()
    weather = weather_in_paris()
    weather_answer = expected_answer(WEATHER_QUESTION).replace("{tool_result}", weather)

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
    lines = out.splitlines()
    assert "agent/assistant configured (version" in out, report
    # Two agent executions, then one workflow execution.
    assert len(re.findall(r"^execution/aex-\S+ created$", out, re.MULTILINE)) == 2, report
    assert len(re.findall(r"^execution/wex-\S+ created$", out, re.MULTILINE)) == 1, report
    assert lines.count("● RUNNING") == 3, report
    assert lines.count("● COMPLETED") == 3, report
    # The streamed transcript lines hold the whole answers, whatever the chunking.
    streamed = [" ".join(line.split()) for line in lines if line.startswith("assistant: ")]
    for expected in (answer, weather_answer):
        assert any(" ".join(expected.split()) in line for line in streamed), report
    assert f"Final answer: {answer}" in out, report
    assert out.index("● RUNNING") < out.index("● COMPLETED") < out.index("Final answer:")

    # Turn two continues the session of turn one and calls the MCP tool before answering.
    assert re.search(r"--session \S+ --message \"What's the weather", out), report
    turn_two = out[out.index(f'--message "{WEATHER_QUESTION}" --follow') : out.index("Serving ")]
    in_order = [
        '→ tool get_weather({"city": "Paris"})',
        f"← get_weather: {weather}",
        f"Final answer: {weather_answer}",
    ]
    for line in in_order:
        assert line in turn_two, f"missing {line!r}\n{report}"
    positions = [turn_two.index(line) for line in in_order]
    assert positions == sorted(positions), report
    # Usage (tokens, model calls) closes each turn; the scripted model reports it too.
    assert sum(line.startswith("Usage: ") for line in lines) == 2, report

    # Then the example workflow, against the demo's price catalog on 127.0.0.1.
    flow = out[out.index("Serving examples/http/ at ") :]
    flow_lines = flow.splitlines()
    assert "workflow/order-flow configured (version 1)" in flow_lines, report
    run = next(line for line in flow_lines if line.startswith("$ polyfleet run workflow "))
    assert run.startswith("$ polyfleet run workflow order-flow --follow --input '"), report
    order = json.loads(run.split("--input ", 1)[1].strip("'"))
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", order["catalog"]), report
    # Live per-task progress, as `polyfleet run workflow --follow` prints it.
    in_order = [
        "▶ /do/1/ask (call:agent)",
        "↳ /do/1/ask: agent execution aex-",
        '✓ /do/1/ask: {"about": "polyfleet is',
        "▶ /do/2/prices (call:http)",
        '✓ /do/2/prices: {"about": "polyfleet is',
        "▶ /do/7/bill (for)",
        "✓ /do/7/bill: ",
        "● COMPLETED",
        "Output: ",
    ]
    positions = []
    for start in in_order:
        found = [i for i, line in enumerate(flow_lines) if line.startswith(start)]
        assert found, f"missing a line starting {start!r}\n{report}"
        positions.append(found[0])
    assert positions == sorted(positions), report
    # The workflow's output holds the total computed from examples/http/prices.json.
    total = order_total(order)
    output_line = flow_lines[positions[-1]]
    total_json = json.dumps(int(total) if total.is_integer() else total)
    assert f'"total": {total_json}' in output_line, report
    output = json.loads(output_line.removeprefix("Output: "))
    assert output["total"] == total, report
    assert output["about"] == answer, report
    # The demo ran secure: TLS and tokens, and no token in anything it printed or logged.
    api = re.search(r"polyfleet API  127\.0\.0\.1:(\d+) \(TLS, bearer tokens\)", out)
    assert api, report
    # The dashboard's URL, https (the API's certificate) on a port of its own.
    dashboard = re.search(r"^  Dashboard      https://127\.0\.0\.1:(\d+)/$", out, re.MULTILINE)
    assert dashboard and dashboard[1] != api[1], report
    tokens = json.loads((data_dir / "credentials" / "tokens.json").read_text())
    logs = "".join(p.read_text(errors="replace") for p in (data_dir / "logs").glob("*.log"))
    for token in tokens.values():
        assert token not in out and token not in result.stderr and token not in logs
    assert survivors == [], report
