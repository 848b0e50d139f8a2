"""Workflow commands end to end against the in-process fake API: apply, run, executions."""

from __future__ import annotations

import io
import json
from pathlib import Path

import grpc
import pytest
import yaml

from polyfleet.cli import run
from polyfleet.client import PolyfleetError
from polyfleet.client import watch as client_watch
from polyfleet.manifest import parse_resources
from polyfleet.v1 import common_pb2, workflow_pb2
from tests.helpers import rpc_error
from tests.unit.cli.support import EXAMPLE_MANIFEST, EXAMPLE_WORKFLOWS, FakeApi, Run

FLOW = """\
apiVersion: polyfleet/v1
kind: Workflow
metadata: {name: greet}
spec:
  description: Greets, then asks the assistant.
  document:
    document: {dsl: "1.0.0", namespace: test, name: greet, version: "1.0.0"}
    do:
      - hello:
          set: {greeting: hi}
      - ask:
          call: agent
          with: {agent: assistant, message: "What is polyfleet?"}
      - later:
          if: ${ false }
          set: {never: true}
"""

FAILING = """\
apiVersion: polyfleet/v1
kind: Workflow
metadata: {name: failing}
spec:
  document:
    document: {dsl: "1.0.0", namespace: test, name: failing, version: "1.0.0"}
    do:
      - first:
          set: {ok: true}
      - boom:
          raise:
            error: {type: https://example.com/boom, status: 500, title: it broke}
"""


@pytest.fixture
def flows(applied: FakeApi, run_cli: Run, tmp_path: Path) -> FakeApi:
    (tmp_path / "greet.yaml").write_text(FLOW, encoding="utf-8")
    (tmp_path / "failing.yaml").write_text(FAILING, encoding="utf-8")
    result = run_cli("--address", applied.address, "apply", "-f", str(tmp_path))
    assert result.code == 0, result.err
    return applied


def cli(api: FakeApi, run_cli: Run, *argv: str) -> tuple[int, str, str]:
    result = run_cli("--address", api.address, *argv)
    return result.code, result.out, result.err


# --- apply ----------------------------------------------------------------------------------


def test_apply_sends_agents_before_workflows_whatever_the_order(
    fake_server: FakeApi, run_cli: Run
) -> None:
    code, out, err = cli(
        fake_server, run_cli, "apply", "-f", str(EXAMPLE_WORKFLOWS), "-f", str(EXAMPLE_MANIFEST)
    )

    assert code == 0, err
    assert out.splitlines() == [
        "agent/assistant configured (version 1)",
        "workflow/order-flow configured (version 1)",
        "workflow/refund-review configured (version 1)",
    ]
    applied = fake_server.state.workflows.recorded.applied
    assert [w.name for w in applied] == ["order-flow", "refund-review"]
    assert "call: agent" in applied[0].document


def test_apply_sends_a_subflow_before_the_workflow_that_runs_it_and_notes_shell_needs(
    fake_server: FakeApi, run_cli: Run, tmp_path: Path
) -> None:
    parent = FLOW.replace("name: greet", "name: parent").replace(
        "      - hello:\n          set: {greeting: hi}\n",
        "      - hello:\n          run: {shell: {command: id}}\n"
        "      - sub:\n          run: {workflow: {name: zchild}}\n",
    )
    (tmp_path / "a-parent.yaml").write_text(parent, encoding="utf-8")
    (tmp_path / "b-child.yaml").write_text(FAILING.replace("failing", "zchild"), encoding="utf-8")

    code, _out, err = cli(
        fake_server, run_cli, "apply", "-f", str(tmp_path), "-f", str(EXAMPLE_MANIFEST)
    )

    assert code == 0, err
    assert [w.name for w in fake_server.state.workflows.recorded.applied] == ["zchild", "parent"]
    assert err == (
        "note: workflow/parent: `run: shell` (/do/0/hello) runs only on runners whose "
        "POLYFLEET_RUNNER_ALLOW_RUN includes shell\n"
    )


def test_apply_again_bumps_the_version(flows: FakeApi, run_cli: Run, tmp_path: Path) -> None:
    code, out, _ = cli(flows, run_cli, "apply", "-f", str(tmp_path / "greet.yaml"))

    assert (code, out) == (0, "workflow/greet configured (version 2)\n")


def test_apply_reports_the_servers_verdict_on_unknown_agents(
    fake_server: FakeApi, run_cli: Run, tmp_path: Path
) -> None:
    # Valid locally (agents are the server's business); the API names the field.
    (tmp_path / "greet.yaml").write_text(FLOW, encoding="utf-8")

    code, out, err = cli(fake_server, run_cli, "apply", "-f", str(tmp_path / "greet.yaml"))

    assert code == 2
    assert out == ""
    assert err == (
        "error: INVALID_ARGUMENT: workflow.document/do/1/ask/with/agent: "
        "unknown agent 'assistant'\n"
    )


def test_an_invalid_document_stores_nothing(
    fake_server: FakeApi, run_cli: Run, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(FLOW.replace("set: {greeting: hi}", "set: ${ .a | }"), encoding="utf-8")

    code, out, err = cli(
        fake_server, run_cli, "apply", "-f", str(EXAMPLE_MANIFEST), "-f", str(broken)
    )

    assert code == 2
    assert out == ""
    assert err.startswith(f"error: {broken}: spec.document/do/0/hello/set: invalid jq expression")
    assert err.endswith("(line 10)\n")
    assert fake_server.state.recorded.applied == []
    assert fake_server.state.workflows.recorded.applied == []


def test_apply_from_stdin(
    fake_server: FakeApi, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(FAILING))

    code, out, _ = cli(fake_server, run_cli, "apply", "-f", "-")

    assert (code, out) == (0, "workflow/failing configured (version 1)\n")


# --- run ------------------------------------------------------------------------------------


def test_run_prints_the_id_and_sends_the_input(flows: FakeApi, run_cli: Run) -> None:
    code, out, _ = cli(flows, run_cli, "run", "workflow", "greet", "--input", '{"n": 1, "a": [1]}')

    assert (code, out) == (0, "wex-1\n")
    (request,) = flows.state.workflows.recorded.created
    assert request.execution.workflow == "greet"
    assert dict(request.execution.input) == {"n": 1, "a": [1]}


def test_run_without_input_sends_none(flows: FakeApi, run_cli: Run) -> None:
    cli(flows, run_cli, "run", "workflow", "greet")

    (request,) = flows.state.workflows.recorded.created
    assert not request.execution.HasField("input")


def test_input_from_a_file_and_from_stdin(
    flows: FakeApi, run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "in.json").write_text('{"from": "file"}', encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO('{"from": "stdin"}'))

    cli(flows, run_cli, "run", "workflow", "greet", "--input", f"@{tmp_path / 'in.json'}")
    cli(flows, run_cli, "run", "workflow", "greet", "-i", "@-")

    first, second = flows.state.workflows.recorded.created
    assert dict(first.execution.input) == {"from": "file"}
    assert dict(second.execution.input) == {"from": "stdin"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{nope", "error: --input: not valid JSON: "),
        ("[1, 2]", "error: --input: the workflow input must be a JSON object, not an array"),
        ("3", "error: --input: the workflow input must be a JSON object, not a int value"),
        ("@/no/such/file.json", "error: --input @/no/such/file.json: cannot read the file: "),
    ],
)
def test_bad_input_is_a_usage_error(run_cli: Run, value: str, message: str) -> None:
    result = run_cli("run", "workflow", "greet", "--input", value)

    assert result.code == 2
    assert result.err.startswith(message)


def test_run_follow_prints_each_task_and_the_output(flows: FakeApi, run_cli: Run) -> None:
    code, out, err = cli(flows, run_cli, "run", "workflow", "greet", "--follow")

    assert code == 0, err
    assert out.splitlines() == [
        "execution/wex-1 created",
        "● PENDING",
        "● RUNNING",
        "▶ /do/0/hello (set)",
        '✓ /do/0/hello: {"greeting": "hi"}',
        "▶ /do/1/ask (call:agent)",
        "↳ /do/1/ask: agent execution aex-child-1",
        '✓ /do/1/ask: "assistant says: What is polyfleet?"',
        "↷ /do/2/later skipped",
        "● COMPLETED",
        'Output: "assistant says: What is polyfleet?"',
    ]


def test_run_follow_of_a_failing_workflow_exits_one(flows: FakeApi, run_cli: Run) -> None:
    code, out, _ = cli(flows, run_cli, "run", "workflow", "failing", "--follow")

    lines = out.splitlines()
    assert code == 1
    assert "✗ /do/1/boom: it broke" in lines
    assert "error: WorkflowError: it broke at /do/1/boom (step ExecuteWorkflow)" in lines
    assert lines[-2:] == [
        "● FAILED",
        "Failed: WorkflowError: it broke at /do/1/boom (step ExecuteWorkflow)",
    ]


def test_run_follow_json_keeps_stdout_parseable(flows: FakeApi, run_cli: Run) -> None:
    code, out, err = cli(flows, run_cli, *"run workflow greet --follow -o json".split())

    assert code == 0
    document = json.loads(out)
    assert document["status"]["phase"] == "EXECUTION_PHASE_COMPLETED"
    assert document["status"]["output"] == "assistant says: What is polyfleet?"
    assert "▶ /do/0/hello (set)" in err


def test_run_follow_resumes_after_a_broken_watch(
    flows: FakeApi, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_watch, "WATCH_BACKOFF_SECONDS", 0.01)

    code, out, err = cli(
        flows, run_cli, "run", "workflow", "greet", "--follow", "--input", '{"flaky": true}'
    )

    assert code == 0, err
    watches = flows.state.workflows.recorded.watches
    assert [w.after_sequence for w in watches] == [0, 3]
    assert out.count("▶ /do/0/hello (set)") == 1
    assert out.count("✓ /do/0/hello") == 1


def test_run_wait_prints_only_the_output_as_json(flows: FakeApi, run_cli: Run) -> None:
    code, out, err = cli(flows, run_cli, *"run workflow greet --wait --timeout 2.5".split())

    assert (code, out, err) == (0, '"assistant says: What is polyfleet?"\n', "")
    (request,) = flows.state.workflows.recorded.executes
    assert request.request.execution.workflow == "greet"
    assert request.timeout.ToTimedelta().total_seconds() == 2.5
    assert flows.state.workflows.recorded.created == []


def test_run_wait_failures_and_json(flows: FakeApi, run_cli: Run) -> None:
    failed = cli(flows, run_cli, *"run workflow failing --wait".split())
    raw = cli(flows, run_cli, *"run workflow failing --wait -o json".split())

    assert failed == (
        1,
        "",
        "execution/wex-1 FAILED: WorkflowError: it broke at /do/1/boom (step ExecuteWorkflow)\n",
    )
    assert raw[0] == 1
    assert json.loads(raw[1])["status"]["tasks"][1]["phase"] == "TASK_PHASE_FAILED"


def test_run_wait_timeout_names_the_execution_and_exits_two(flows: FakeApi, run_cli: Run) -> None:
    code, out, err = cli(
        flows, run_cli, *"run workflow greet --wait --timeout 1 --input".split(), '{"hang": 1}'
    )

    assert (code, out) == (2, "")
    first, hint = err.splitlines()
    assert first.startswith("error: DEADLINE_EXCEEDED: execution wex-1 did not finish within 1s")
    assert hint == "hint: it keeps running; follow it with: polyfleet executions watch wex-1"


def test_run_wait_timeout_without_an_id_suggests_listing_the_workflow() -> None:
    expired = rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")

    error = run.still_running(PolyfleetError.from_rpc(expired), "--workflow greet")

    assert error.hint == (
        "it may still be running; find it with: "
        "polyfleet executions list --workflow greet --phase running"
    )


def test_run_timeout_needs_wait(run_cli: Run) -> None:
    result = run_cli(*"run workflow greet --timeout 5".split())

    assert (result.code, result.err) == (2, "error: --timeout applies only with --wait\n")


def test_unknown_workflow_reports_the_grpc_status(applied: FakeApi, run_cli: Run) -> None:
    code, _, err = cli(applied, run_cli, "run", "workflow", "nope")

    assert (code, err) == (2, "error: NOT_FOUND: workflow 'nope' not found\n")


# --- executions -----------------------------------------------------------------------------


def test_json_output_keeps_integers_integers(flows: FakeApi, run_cli: Run) -> None:
    # Struct holds numbers as doubles; `-o json` must not turn an ID of 1 into 1.0.
    _, created, _ = cli(flows, run_cli, "run", "workflow", "greet", "--input", '{"petId": 1}')
    _, raw, _ = cli(flows, run_cli, "executions", "get", created.strip(), "-o", "json")

    assert '"petId": 1.0' not in raw
    pet_id = json.loads(raw)["input"]["petId"]
    assert (pet_id, type(pet_id)) == (1, int)


def test_executions_get_picks_the_service_by_id_prefix(flows: FakeApi, run_cli: Run) -> None:
    cli(flows, run_cli, "run", "workflow", "greet", "--input", '{"n": 1}')
    cli(flows, run_cli, "run", "agent", "assistant", "-m", "hello")

    _, workflow_text, _ = cli(flows, run_cli, "executions", "get", "wex-1")
    _, workflow_json, _ = cli(flows, run_cli, "executions", "get", "wex-1", "-o", "json")
    _, agent_text, _ = cli(flows, run_cli, "executions", "get", "aex-1")

    assert workflow_text.splitlines()[:3] == [
        "ID:          wex-1",
        "Workflow:    greet",
        "Phase:       COMPLETED",
    ]
    assert 'Input:       {"n": 1}' in workflow_text
    assert "Tasks:\n  COMPLETED  /do/0/hello (set) -> " in workflow_text
    assert "  COMPLETED  /do/1/ask (call:agent, agent execution aex-child-1) -> " in workflow_text
    assert "  SKIPPED    /do/2/later (set)" in workflow_text
    assert json.loads(workflow_json)["workflow"] == "greet"
    assert "Agent:" in agent_text and "assistant" in agent_text


def test_executions_get_of_an_unknown_workflow_execution(flows: FakeApi, run_cli: Run) -> None:
    code, _, err = cli(flows, run_cli, "executions", "get", "wex-404")

    assert (code, err) == (2, "error: NOT_FOUND: workflow execution 'wex-404' not found\n")


def test_executions_list_of_a_workflow(flows: FakeApi, run_cli: Run) -> None:
    for name in ("greet", "failing", "greet"):
        cli(flows, run_cli, "run", "workflow", name)

    _, out, _ = cli(
        flows, run_cli, *"executions list --workflow greet --phase completed --page-size 1".split()
    )
    _, every, _ = cli(flows, run_cli, *"executions list --kind workflow -o json".split())

    lines = out.splitlines()
    assert lines[0].split() == ["ID", "WORKFLOW", "PHASE", "CREATED"]
    assert lines[1].split() == ["wex-1", "greet", "COMPLETED", "2023-11-14T22:13:20Z"]
    assert lines[-1] == "next page token: next-page"
    first = flows.state.workflows.recorded.lists[0]
    assert (first.workflow, first.page_size) == ("greet", 1)
    assert first.phase == common_pb2.EXECUTION_PHASE_COMPLETED
    assert [e["id"] for e in json.loads(every)["executions"]] == ["wex-1", "wex-2", "wex-3"]


@pytest.mark.parametrize(
    "argv",
    [
        "executions list --workflow greet --agent assistant",
        "executions list --kind workflow --session s-1",
        "executions list --kind agent --workflow greet",
    ],
)
def test_executions_list_filters_of_one_kind_only(run_cli: Run, argv: str) -> None:
    result = run_cli(*argv.split())

    assert result.code == 2
    assert result.err.startswith("error: --")


def test_executions_watch_of_a_workflow_execution(flows: FakeApi, run_cli: Run) -> None:
    cli(flows, run_cli, "run", "workflow", "failing")

    code, out, _ = cli(flows, run_cli, "executions", "watch", "wex-1", "--after", "4")

    assert code == 1
    lines = out.splitlines()
    # Events 1-4 (PENDING, RUNNING, /do/0/first RUNNING and COMPLETED) were skipped.
    assert lines[0] == "● RUNNING"
    assert lines[1] == "▶ /do/1/boom (raise)"
    assert flows.state.workflows.recorded.watches[-1].after_sequence == 4


def test_executions_cancel_of_a_workflow_execution(flows: FakeApi, run_cli: Run) -> None:
    cli(flows, run_cli, "run", "workflow", "greet", "--input", '{"hang": true}')

    code, out, _ = cli(flows, run_cli, "executions", "cancel", "wex-1")
    watch = cli(flows, run_cli, "executions", "watch", "wex-1")

    assert (code, out) == (0, "execution/wex-1 cancelled (phase CANCELLED)\n")
    assert flows.state.workflows.recorded.cancels == ["wex-1"]
    assert watch[0] == 1
    assert watch[1].splitlines()[-3:] == ["■ /do/0/hello cancelled", "● CANCELLED", "Cancelled."]


def test_cancelling_a_finished_workflow_execution_says_so(flows: FakeApi, run_cli: Run) -> None:
    cli(flows, run_cli, "run", "workflow", "greet")

    _, out, _ = cli(flows, run_cli, "executions", "cancel", "wex-1", "--wait")

    assert out == "execution/wex-1 was not cancelled: it ended first (phase COMPLETED)\n"


# --- workflows ------------------------------------------------------------------------------


def test_workflows_list_follows_pages(flows: FakeApi, run_cli: Run) -> None:
    code, out, _ = cli(flows, run_cli, "workflows", "list")
    _, raw, _ = cli(flows, run_cli, "workflows", "list", "-o", "json")

    assert code == 0
    assert [line.split()[:3] for line in out.splitlines()] == [
        ["NAME", "VERSION", "DOCUMENT"],
        ["failing", "1", "test/failing@1.0.0"],
        ["greet", "1", "test/greet@1.0.0"],
    ]
    assert [w["name"] for w in json.loads(raw)["workflows"]] == ["failing", "greet"]


def test_workflows_list_when_there_are_none(fake_server: FakeApi, run_cli: Run) -> None:
    code, out, err = cli(fake_server, run_cli, "workflows", "list")

    assert (code, out) == (0, "")
    assert err == "No workflows found. Create one with 'polyfleet apply -f FILE'.\n"


def test_workflows_get_formats(flows: FakeApi, run_cli: Run) -> None:
    _, text, _ = cli(flows, run_cli, "workflows", "get", "greet")
    _, raw, _ = cli(flows, run_cli, "workflows", "get", "greet", "-o", "json")
    _, manifest, _ = cli(flows, run_cli, "workflow", "get", "greet", "-o", "yaml")

    assert "Description: Greets, then asks the assistant." in text
    assert "Document:    test/greet@1.0.0" in text
    assert "Definition:\n  document:\n" in text
    assert "      call: agent" in text
    assert json.loads(raw)["version"] == "1"
    (again,) = parse_resources(manifest)
    assert isinstance(again, workflow_pb2.Workflow)
    assert yaml.safe_load(again.document) == yaml.safe_load(
        flows.state.workflows.workflows["greet"].document
    )
    assert again.description == "Greets, then asks the assistant."


def test_workflows_get_unknown(applied: FakeApi, run_cli: Run) -> None:
    code, _, err = cli(applied, run_cli, "workflows", "get", "nope")

    assert (code, err) == (2, "error: NOT_FOUND: workflow 'nope' not found\n")
