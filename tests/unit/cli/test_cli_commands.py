"""The API commands end to end against an in-process fake of the orchestrator API."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from types import ModuleType

import grpc
import pytest

from polyfleet.cli import run
from polyfleet.client import PolyfleetError
from polyfleet.client import watch as client_watch
from polyfleet.manifest import parse_manifests
from polyfleet.v1 import common_pb2
from tests.helpers import rpc_error
from tests.unit.cli.support import EXAMPLE_MANIFEST, FakeApi, Run

BROKEN = """\
apiVersion: polyfleet/v1
kind: Agent
metadata: {name: broken}
spec:
  model: {model: x}
"""


def polyfleet_answer() -> str:
    (agent,) = parse_manifests(EXAMPLE_MANIFEST.read_text(encoding="utf-8"))
    rule = next(r for r in agent.model.scripted.rules if re.search(r.pattern, "What is polyfleet?"))
    return rule.reply


# --- apply ----------------------------------------------------------------------------------


def test_apply_prints_each_agent_and_version(fake_server: FakeApi, run_cli: Run) -> None:
    first = run_cli("--address", fake_server.address, "apply", "-f", str(EXAMPLE_MANIFEST))
    second = run_cli("--address", fake_server.address, "apply", "-f", str(EXAMPLE_MANIFEST))

    assert (first.code, first.out) == (0, "agent/assistant configured (version 1)\n")
    assert second.out == "agent/assistant configured (version 2)\n"


def test_apply_with_an_invalid_manifest_stores_nothing(
    fake_server: FakeApi, run_cli: Run, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN, encoding="utf-8")

    result = run_cli(
        "--address", fake_server.address, "apply", "-f", str(EXAMPLE_MANIFEST), "-f", str(broken)
    )

    assert result.code == 2
    assert result.err.startswith(f"error: {broken}: spec.model.provider: field required")
    assert result.out == ""
    assert fake_server.state.recorded.applied == []


def test_apply_reads_a_directory_and_stdin(
    fake_server: FakeApi, run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "one.yaml").write_text(
        EXAMPLE_MANIFEST.read_text().replace("name: assistant", "name: one"), encoding="utf-8"
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(EXAMPLE_MANIFEST.read_text(encoding="utf-8")))

    result = run_cli("--address", fake_server.address, "apply", "-f", str(tmp_path), "-f", "-")

    assert result.out.splitlines() == [
        "agent/one configured (version 1)",
        "agent/assistant configured (version 1)",
    ]


def test_apply_sends_relative_mcp_paths_resolved(
    fake_server: FakeApi,
    run_cli: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "agents").mkdir()
    manifest = tmp_path / "agents" / "local.yaml"
    text = EXAMPLE_MANIFEST.read_text(encoding="utf-8")
    manifest.write_text(text, encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO(text.replace("name: assistant", "name: piped")))
    monkeypatch.chdir(tmp_path)

    result = run_cli(
        "--address", fake_server.address, "apply", "-f", "agents/local.yaml", "-f", "-"
    )

    assert result.code == 0, result.err
    from_file, from_stdin = fake_server.state.recorded.applied
    assert from_file.mcp_servers[0].stdio.args == [str(tmp_path / "mcp" / "weather_server.py")]
    # stdin has no directory of its own: the working directory stands in.
    assert from_stdin.mcp_servers[0].stdio.args == [
        str(tmp_path.parent / "mcp" / "weather_server.py")
    ]
    assert from_file.mcp_servers[0].stdio.command == "{python}"


def test_unreachable_api_is_an_error_with_a_hint(run_cli: Run) -> None:
    result = run_cli("--address", "127.0.0.1:1", "agents", "list")

    assert result.code == 2
    assert result.err.startswith("error: UNAVAILABLE: ")
    assert "hint: is the polyfleet API running at 127.0.0.1:1?" in result.err


def test_address_defaults_to_the_environment(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYFLEET_API_ADDRESS", "127.0.0.1:2")

    result = run_cli("agents", "list")

    assert "running at 127.0.0.1:2?" in result.err


def test_a_malformed_setting_is_an_error_naming_the_variable(
    run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYFLEET_GRPC_MAX_MESSAGE_BYTES", "lots")

    result = run_cli("agents", "list")

    assert result.code == 2
    assert result.err.startswith("error: invalid configuration: POLYFLEET_GRPC_MAX_MESSAGE_BYTES=")
    assert "Traceback" not in result.err


# --- run ------------------------------------------------------------------------------------


def test_run_without_follow_prints_the_id(applied: FakeApi, run_cli: Run) -> None:
    result = run_cli(
        "--address", applied.address, "run", "agent", "assistant", "-m", "hi", "--session", "s-9"
    )

    assert (result.code, result.out) == (0, "aex-1\n")
    (request,) = applied.state.recorded.created
    assert (request.execution.agent, request.execution.message) == ("assistant", "hi")
    assert request.execution.session_id == "s-9"


def test_run_json_prints_the_execution(applied: FakeApi, run_cli: Run) -> None:
    result = run_cli(
        "--address", applied.address, "run", "agent", "assistant", "-m", "hi", "-o", "json"
    )

    document = json.loads(result.out)
    assert document["id"] == "aex-1"
    assert document["status"]["phase"] == "EXECUTION_PHASE_PENDING"


def test_run_follow_streams_progress_and_the_final_answer(applied: FakeApi, run_cli: Run) -> None:
    answer = polyfleet_answer()

    result = run_cli(
        "--address",
        applied.address,
        *"run agent assistant --follow -m".split(),
        "What is polyfleet?",
    )

    assert result.code == 0, result.err
    words = len(answer.split())
    assert result.out.splitlines() == [
        "execution/aex-1 created",
        "● PENDING",
        "● RUNNING",
        f"assistant: {answer}",
        "● COMPLETED",
        f"Final answer: {answer}",
        f"Usage: {words + 3} tokens (3 in, {words} out), 1 model call",
    ]


def test_run_follow_shows_the_tool_call_and_its_result(
    applied: FakeApi, run_cli: Run, fake_api: ModuleType
) -> None:
    result = run_cli(
        "--address",
        applied.address,
        *"run agent assistant --follow -m".split(),
        "What's the weather in Paris?",
    )

    assert result.code == 0, result.err
    tool_result = fake_api.fake_tool_result("get_weather", {"city": "Paris"})
    lines = result.out.splitlines()
    start = lines.index('→ tool get_weather({"city": "Paris"})')
    assert lines[start + 1] == f"← get_weather: {tool_result}"
    assert lines[start + 2] == f"assistant: The weather in Paris: {tool_result}"
    assert f"Final answer: The weather in Paris: {tool_result}" in lines
    assert lines[-1].endswith("2 model calls")


def test_run_follow_shows_sub_agent_runs_and_cost(
    fake_server: FakeApi, run_cli: Run, tmp_path: Path
) -> None:
    manifest = tmp_path / "researcher.yaml"
    manifest.write_text(
        EXAMPLE_MANIFEST.read_text(encoding="utf-8")
        + """  subAgents:
    - name: summarizer
      description: Summarizes.
"""
        + "".join(
            f"{line}\n"
            for line in (
                "---",
                "apiVersion: polyfleet/v1",
                "kind: Agent",
                "metadata: {name: priced}",
                "spec:",
                "  model:",
                "    provider: scripted",
                "    pricing: {inputPerMillionTokens: 1000, outputPerMillionTokens: 2000}",
                "    scripted: {defaultReply: ok}",
            )
        ),
        encoding="utf-8",
    )
    run_cli("--address", fake_server.address, "apply", "-f", str(manifest))

    delegated = run_cli(
        "--address", fake_server.address, *"run agent assistant --follow -m".split(), "delegate"
    )
    priced = run_cli(
        "--address", fake_server.address, *"run agent priced --follow -m".split(), "two words"
    )

    lines = delegated.out.splitlines()
    start = lines.index("→ sub-agent summarizer: delegate")
    assert lines[start + 1] == "← summarizer: summarizer did: delegate"
    assert priced.out.splitlines()[-1] == (
        "Usage: 3 tokens (2 in, 1 out), 1 model call, cost 0.004 USD"
    )


def test_run_follow_of_a_failing_execution_exits_one(applied: FakeApi, run_cli: Run) -> None:
    result = run_cli(
        "--address", applied.address, "run", "agent", "assistant", "-m", "explode", "--follow"
    )

    assert result.code == 1
    assert "error: ModelProviderError: the scripted model was told to fail" in result.out
    assert "● FAILED" in result.out
    assert result.out.splitlines()[-1].startswith("Failed: ModelProviderError:")


def test_run_follow_json_keeps_stdout_parseable(applied: FakeApi, run_cli: Run) -> None:
    result = run_cli(
        "--address", applied.address, *"run agent assistant -m hello --follow -o json".split()
    )

    assert result.code == 0
    assert json.loads(result.out)["status"]["phase"] == "EXECUTION_PHASE_COMPLETED"
    assert "● COMPLETED" in result.err


def test_unknown_agent_reports_the_grpc_status(applied: FakeApi, run_cli: Run) -> None:
    result = run_cli("--address", applied.address, "run", "agent", "nope", "-m", "hi")

    assert result.code == 2
    assert result.err == 'error: NOT_FOUND: agent "nope" not found\n'


# --- executions -----------------------------------------------------------------------------


def test_executions_get_text_and_json(applied: FakeApi, run_cli: Run) -> None:
    run_cli("--address", applied.address, "run", "agent", "assistant", "-m", "capital of France")

    text = run_cli("--address", applied.address, "executions", "get", "aex-1")
    raw = run_cli("--address", applied.address, "executions", "get", "aex-1", "-o", "json")

    assert "Phase:" in text.out and "COMPLETED" in text.out
    assert "Output:" in text.out and "Paris" in text.out
    assert json.loads(raw.out)["agent"] == "assistant"


def test_executions_list_table_filters_and_page_token(applied: FakeApi, run_cli: Run) -> None:
    for message in ("hello", "explode", "capital of France"):
        run_cli("--address", applied.address, "run", "agent", "assistant", "-m", message)

    result = run_cli(
        "--address",
        applied.address,
        *"executions list --agent assistant --phase completed --page-size 1".split(),
    )

    lines = result.out.splitlines()
    assert lines[0].split() == ["ID", "AGENT", "PHASE", "CREATED"]
    assert lines[1].split() == ["aex-1", "assistant", "COMPLETED", "2023-11-14T22:13:20Z"]
    assert lines[-1] == "next page token: next-page"
    request = applied.state.recorded.lists[-1]
    assert (request.agent, request.page_size) == ("assistant", 1)
    assert request.phase == common_pb2.EXECUTION_PHASE_COMPLETED


def test_executions_watch_replays_and_exits_by_outcome(applied: FakeApi, run_cli: Run) -> None:
    run_cli("--address", applied.address, "run", "agent", "assistant", "-m", "explode")

    result = run_cli("--address", applied.address, "executions", "watch", "aex-1")

    assert result.code == 1
    assert "● RUNNING" in result.out


def test_executions_watch_after_shows_only_later_events(applied: FakeApi, run_cli: Run) -> None:
    run_cli("--address", applied.address, "run", "agent", "assistant", "-m", "hello")

    result = run_cli("--address", applied.address, "executions", "watch", "aex-1", "--after", "2")

    assert result.code == 0
    lines = result.out.splitlines()
    # The first later event carries the phase the execution was in; PENDING came before.
    assert "● PENDING" not in lines
    assert lines[0] == "● RUNNING"
    assert lines[1].startswith("assistant: Hello! I am the polyfleet demo")
    assert applied.state.recorded.watches[-1].after_sequence == 2


def test_watch_resumes_after_the_last_event_when_the_stream_breaks(
    applied: FakeApi, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_watch, "WATCH_BACKOFF_SECONDS", 0.01)

    result = run_cli(
        "--address", applied.address, *"run agent assistant --follow -m".split(), "flaky hello"
    )

    assert result.code == 0, result.err
    watches = applied.state.recorded.watches
    assert [w.after_sequence for w in watches] == [0, 3]
    assert result.out.count("● RUNNING") == 1
    assert result.out.count("assistant: ") == 1
    assert "Final answer: You said:" in result.out


def test_executions_cancel_prints_the_resulting_phase(applied: FakeApi, run_cli: Run) -> None:
    run_cli("--address", applied.address, "run", "agent", "assistant", "-m", "hang on")

    result = run_cli("--address", applied.address, "executions", "cancel", "aex-1")
    again = run_cli("--address", applied.address, "executions", "cancel", "aex-1", "-o", "json")

    assert (result.code, result.out) == (0, "execution/aex-1 cancelled (phase CANCELLED)\n")
    assert json.loads(again.out)["status"]["phase"] == "EXECUTION_PHASE_CANCELLED"
    assert applied.state.recorded.cancels == ["aex-1", "aex-1"]


def test_cancelling_a_finished_execution_says_so(applied: FakeApi, run_cli: Run) -> None:
    run_cli("--address", applied.address, "run", "agent", "assistant", "-m", "hello")

    result = run_cli("--address", applied.address, "executions", "cancel", "aex-1")

    assert result.code == 0
    assert result.out == "execution/aex-1 was not cancelled: it ended first (phase COMPLETED)\n"


def test_cancel_of_a_still_running_execution_points_at_watch(
    applied: FakeApi, run_cli: Run
) -> None:
    run_cli("--address", applied.address, "run", "agent", "assistant", "-m", "hang graceful")

    result = run_cli("--address", applied.address, "executions", "cancel", "aex-1")

    assert result.out == (
        "execution/aex-1 cancel requested (phase RUNNING); "
        "follow it with: polyfleet executions watch aex-1\n"
    )


def test_cancel_wait_waits_for_the_terminal_phase(
    applied: FakeApi, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_watch, "POLL_INTERVAL", 0.01)
    run_cli("--address", applied.address, "run", "agent", "assistant", "-m", "hang graceful")

    result = run_cli("--address", applied.address, "executions", "cancel", "aex-1", "--wait")

    assert (result.code, result.out) == (0, "execution/aex-1 cancelled (phase CANCELLED)\n")


def test_cancel_wait_gives_up_after_its_timeout(
    applied: FakeApi, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_watch, "POLL_INTERVAL", 0.01)
    run_cli("--address", applied.address, "run", "agent", "assistant", "-m", "hang stubborn")

    result = run_cli(
        "--address", applied.address, *"executions cancel aex-1 --wait --timeout 0.05".split()
    )

    assert result.code == 2
    assert "error: execution aex-1 is still RUNNING after 0.05 s" in result.err
    assert "hint: follow it with: polyfleet executions watch aex-1" in result.err


# --- run --wait (ExecuteAgent) --------------------------------------------------------------


def test_run_wait_prints_only_the_answer(applied: FakeApi, run_cli: Run) -> None:
    result = run_cli(
        "--address",
        applied.address,
        *"run agent assistant --wait --timeout 2.5 --session s-3 -m".split(),
        "What is polyfleet?",
    )

    assert (result.code, result.out, result.err) == (0, polyfleet_answer() + "\n", "")
    (request,) = applied.state.recorded.executes
    assert request.request.execution.agent == "assistant"
    assert request.request.execution.session_id == "s-3"
    assert request.timeout.ToTimedelta().total_seconds() == 2.5
    assert applied.state.recorded.created == []


def test_run_wait_prints_structured_output_as_json(
    fake_server: FakeApi, run_cli: Run, tmp_path: Path
) -> None:
    manifest = tmp_path / "structured.yaml"
    manifest.write_text(
        EXAMPLE_MANIFEST.read_text(encoding="utf-8")
        + "  outputSchema: {type: object, properties: {answer: {type: string}}}\n",
        encoding="utf-8",
    )
    run_cli("--address", fake_server.address, "apply", "-f", str(manifest))

    result = run_cli(
        "--address", fake_server.address, *"run agent assistant --wait -m".split(), "hello"
    )
    follow = run_cli(
        "--address", fake_server.address, *"run agent assistant --follow -m".split(), "hello"
    )

    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["answer"].startswith("Hello!")
    assert result.out.startswith('{\n  "answer": ')
    assert f'Structured output: {{"answer": "{document["answer"]}", "words": ' in follow.out


def test_run_wait_leaves_the_timeout_to_the_server_by_default(
    applied: FakeApi, run_cli: Run
) -> None:
    result = run_cli("--address", applied.address, *"run agent assistant --wait -m hello".split())

    assert result.code == 0
    (request,) = applied.state.recorded.executes
    assert not request.HasField("timeout")


def test_run_wait_json_and_failures(applied: FakeApi, run_cli: Run) -> None:
    ok = run_cli(
        "--address", applied.address, *"run agent assistant --wait -o json -m hello".split()
    )
    failed = run_cli("--address", applied.address, *"run agent assistant -w -m explode".split())

    assert json.loads(ok.out)["status"]["phase"] == "EXECUTION_PHASE_COMPLETED"
    assert failed.code == 1
    assert failed.out == ""
    assert failed.err == (
        "execution/aex-2 FAILED: ModelProviderError: the scripted model was told to fail "
        "(step ExecuteGraphton)\n"
    )


def test_run_wait_timeout_names_the_execution_and_exits_two(applied: FakeApi, run_cli: Run) -> None:
    result = run_cli(
        "--address", applied.address, *"run agent assistant --wait --timeout 1 -m".split(), "hang"
    )

    assert result.code == 2
    assert result.out == ""
    first, hint = result.err.splitlines()
    assert first.startswith("error: DEADLINE_EXCEEDED: execution aex-1 did not finish within 1s")
    assert hint == "hint: it keeps running; follow it with: polyfleet executions watch aex-1"


def test_run_wait_timeout_without_an_execution_id_suggests_listing() -> None:
    expired = rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")

    error = run.still_running(PolyfleetError.from_rpc(expired), "--agent assistant")

    assert error.message == "DEADLINE_EXCEEDED: Deadline Exceeded"
    assert "polyfleet executions list --agent assistant --phase running" in error.hint


def test_run_wait_timeout_reads_the_execution_from_error_info_not_the_message() -> None:
    expired = rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "execution aex-from-text did not finish")

    error = run.still_running(PolyfleetError.from_rpc(expired), "--agent assistant")

    assert "aex-from-text" not in error.hint
    assert "polyfleet executions list --agent assistant --phase running" in error.hint


def test_run_timeout_needs_wait(run_cli: Run) -> None:
    result = run_cli(*"run agent assistant -m hi --timeout 5".split())

    assert result.code == 2
    assert result.err == "error: --timeout applies only with --wait\n"


# --- agents ---------------------------------------------------------------------------------


def test_agents_list_follows_pages(applied: FakeApi, run_cli: Run, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(EXAMPLE_MANIFEST.read_text().replace("name: assistant", "name: zeta"))
    run_cli("--address", applied.address, "apply", "-f", str(other))

    result = run_cli("--address", applied.address, "agents", "list")

    rows = [line.split()[:3] for line in result.out.splitlines()]
    assert rows == [
        ["NAME", "VERSION", "PROVIDER"],
        ["assistant", "1", "scripted"],
        ["zeta", "1", "scripted"],
    ]


def test_agents_get_formats(applied: FakeApi, run_cli: Run) -> None:
    text = run_cli("--address", applied.address, "agents", "get", "assistant")
    raw = run_cli("--address", applied.address, "agents", "get", "assistant", "-o", "json")
    manifest = run_cli("--address", applied.address, "agents", "get", "assistant", "-o", "yaml")

    assert "Name:" in text.out and "assistant" in text.out
    assert json.loads(raw.out)["model"]["provider"] == "scripted"
    (agent,) = parse_manifests(manifest.out)
    assert agent.model.scripted.rules[0].pattern


def test_agents_get_and_executions_get_show_tools_and_sub_agents(
    fake_server: FakeApi, run_cli: Run
) -> None:
    researcher = EXAMPLE_MANIFEST.parent / "openai-compatible.yaml"
    run_cli("--address", fake_server.address, "apply", "-f", str(researcher))
    run_cli("--address", fake_server.address, "apply", "-f", str(EXAMPLE_MANIFEST))
    run_cli("--address", fake_server.address, *"run agent assistant -m".split(), "weather")
    run_cli("--address", fake_server.address, *"run agent researcher -m".split(), "delegate it")

    agent = run_cli("--address", fake_server.address, "agents", "get", "researcher").out
    execution = run_cli("--address", fake_server.address, "executions", "get", "aex-1").out
    delegated = run_cli("--address", fake_server.address, "executions", "get", "aex-2").out

    assert re.search(r"^API key: +secret OPENAI_API_KEY$", agent, re.MULTILINE)
    assert re.search(r"^Limits: +25 steps, timeout 300s$", agent, re.MULTILINE)
    assert "  weather: stdio {python} /" in agent
    assert "  summarizer: Condenses a text" in agent
    assert '  tool get_weather(city="Paris") -> fake get_weather result' in execution
    assert "Sub-agent runs:\n  summarizer [COMPLETED] delegate it -> summarizer did:" in delegated
    assert "Usage:    " in execution


def test_agents_get_unknown(applied: FakeApi, run_cli: Run) -> None:
    result = run_cli("--address", applied.address, "agents", "get", "nope")

    assert (result.code, result.err) == (2, 'error: NOT_FOUND: agent "nope" not found\n')
