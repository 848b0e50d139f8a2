"""The polyfleet CLI as a separate process against a real orchestrator, runner and Temporal."""

from __future__ import annotations

import json
from pathlib import Path

from polyfleet.v1 import agent_pb2
from tests.conftest import Fleet
from tests.helpers import run_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agents" / "assistant.yaml"


async def test_malformed_yaml_names_file_and_field_and_stores_nothing(
    fleet: Fleet, tmp_path: Path
) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text(
        "apiVersion: polyfleet/v1\nkind: Agent\nmetadata:\n  name: broken\n"
        "spec:\n  model:\n    model: x\n"
    )
    code, _, err = await run_cli(fleet, "apply", "-f", str(bad))
    assert code != 0
    assert "broken.yaml" in err
    assert "spec.model.provider" in err
    listed = await fleet.agents.ListAgents(agent_pb2.ListAgentsRequest())
    assert list(listed.agents) == []


async def test_apply_then_run_follow_prints_progress_and_json(fleet: Fleet) -> None:
    code, out, err = await run_cli(fleet, "apply", "-f", str(EXAMPLE))
    assert code == 0, err
    assert "agent/assistant configured" in out

    code, out, err = await run_cli(
        fleet,
        "run",
        "agent",
        "assistant",
        "--message",
        "capital of France?",
        "--follow",
        "-o",
        "json",
    )
    assert code == 0, err
    execution = json.loads(out)
    assert execution["status"]["phase"] == "EXECUTION_PHASE_COMPLETED"
    assert execution["status"]["outputText"] == "The capital of France is Paris."
    assert "RUNNING" in err  # live progress goes to stderr when stdout carries JSON

    code, out, _ = await run_cli(fleet, "executions", "get", execution["id"], "-o", "json")
    assert code == 0
    assert json.loads(out)["id"] == execution["id"]
    code, out, _ = await run_cli(fleet, "executions", "list")
    assert code == 0 and execution["id"] in out


async def test_run_exits_non_zero_when_the_execution_fails(fleet: Fleet) -> None:
    assert (await run_cli(fleet, "apply", "-f", str(EXAMPLE)))[0] == 0
    code, out, err = await run_cli(
        fleet, "run", "agent", "assistant", "--message", "please explode", "--follow"
    )
    assert code == 1
    assert "the scripted model was told to fail" in out + err


async def test_run_with_request_id_and_priority_then_list_by_time(fleet: Fleet) -> None:
    assert (await run_cli(fleet, "apply", "-f", str(EXAMPLE)))[0] == 0
    args = ("run", "agent", "assistant", "-m", "hello", "--request-id", "cli-1", "--priority", "2")
    code, first, err = await run_cli(fleet, *args, "-o", "json")
    assert code == 0, err
    code, again, err = await run_cli(fleet, *args, "-o", "json")
    assert code == 0, err
    original = json.loads(first)
    assert json.loads(again)["id"] == original["id"]
    assert original["priority"] == 2
    code, out, _ = await run_cli(
        fleet, "executions", "list", "--created-after", "2000-01-01T00:00Z"
    )
    assert code == 0 and original["id"] in out
    code, out, _ = await run_cli(
        fleet, "executions", "list", "--created-after", "2999-01-01T00:00Z"
    )
    assert code == 0 and original["id"] not in out
    code, _, err = await run_cli(fleet, *args[:5], "--priority", "9")
    assert code == 2 and "priority" in err
