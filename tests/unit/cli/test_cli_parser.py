"""argparse wiring: every command parses, bad usage exits 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from polyfleet.cli import commands, dev, executions, run
from polyfleet.cli.main import main
from polyfleet.cli.parser import build_parser
from polyfleet.v1 import common_pb2

HELP_COMMANDS = [
    [],
    ["apply"],
    ["run"],
    ["run", "agent"],
    ["run", "workflow"],
    ["executions"],
    ["executions", "get"],
    ["executions", "list"],
    ["executions", "watch"],
    ["executions", "cancel"],
    ["agents"],
    ["agents", "list"],
    ["agents", "get"],
    ["workflows"],
    ["workflows", "list"],
    ["workflows", "get"],
    ["dev"],
    ["demo"],
]


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "polyfleet")
def test_help_exits_zero(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])

    assert info.value.code == 0
    assert "usage: polyfleet" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["apply"],
        ["run", "agent", "assistant"],
        ["run", "workflow", "x", "--message", "hi"],
        ["run", "workflow", "x", "--wait", "--follow"],
        ["run", "workflow", "x", "-o", "yaml"],
        ["run", "workflow"],
        ["executions", "list", "--kind", "session"],
        ["workflows", "get"],
        ["workflows", "get", "x", "-o", "xml"],
        ["run", "agent", "assistant", "--message", "hi", "-o", "yaml"],
        ["run", "agent", "assistant", "--message", "hi", "--wait", "--follow"],
        ["run", "agent", "assistant", "--message", "hi", "--wait", "--timeout", "0"],
        ["run", "agent", "assistant", "--message", "hi", "--wait", "--timeout", "nan"],
        ["executions", "cancel", "aex-1", "--timeout", "-1"],
        ["executions", "get"],
        ["executions", "list", "--phase", "sleeping"],
        ["executions", "list", "--page-size", "0"],
        ["executions", "watch", "aex-1", "--after", "-1"],
        ["agents", "get"],
        ["dev", "--runners", "-1"],
        ["dev", "--temporal-port", "70000"],
        ["dev", "--http-address", "7280"],
        ["dev", "--http-address", "127.0.0.1:http"],
        ["dev", "--http-address", ":7280"],
        ["demo", "--timeout", "soon"],
    ],
    ids=lambda argv: " ".join(argv) or "nothing",
)
def test_bad_usage_exits_two(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)

    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_run_agent_arguments() -> None:
    args = build_parser().parse_args(
        ["--address", "h:1", "run", "agent", "assistant", "-m", "hi", "--session", "s", "--follow"]
    )

    assert args.handler is run.cmd_run_agent
    assert (args.address, args.name, args.message, args.session) == ("h:1", "assistant", "hi", "s")
    assert args.follow is True
    assert args.output == "text"


def test_run_workflow_arguments() -> None:
    args = build_parser().parse_args(
        ["run", "workflow", "flow", "--input", '{"a": 1}', "--wait", "--timeout", "9", "-o", "json"]
    )

    assert args.handler is run.cmd_run_workflow
    assert (args.name, args.input, args.wait, args.follow) == ("flow", '{"a": 1}', True, False)
    assert (args.timeout, args.output) == (9.0, "json")


def test_workflows_commands() -> None:
    listing = build_parser().parse_args(["workflows", "list"])
    get = build_parser().parse_args(["workflow", "get", "flow", "-o", "yaml"])

    assert listing.handler is commands.cmd_workflows_list
    assert (get.handler, get.name, get.output) == (commands.cmd_workflows_get, "flow", "yaml")


def test_executions_list_of_workflows() -> None:
    args = build_parser().parse_args(["executions", "list", "--workflow", "flow"])

    assert (args.workflow, args.kind, args.agent) == ("flow", None, None)


def test_apply_takes_repeated_files() -> None:
    args = build_parser().parse_args(["apply", "-f", "a.yaml", "-f", "b.yaml"])

    assert args.handler is commands.cmd_apply
    assert args.files == ["a.yaml", "b.yaml"]


def test_executions_list_filters() -> None:
    args = build_parser().parse_args(
        ["executions", "list", "--agent", "a", "--phase", "running", "--page-size", "5"]
    )

    assert args.handler is executions.cmd_executions_list
    assert args.phase == common_pb2.EXECUTION_PHASE_RUNNING
    assert (args.agent, args.page_size, args.page_token) == ("a", 5, None)


def test_executions_watch_after() -> None:
    args = build_parser().parse_args(["executions", "watch", "aex-1", "--after", "7"])

    assert args.handler is executions.cmd_executions_watch
    assert (args.id, args.after) == ("aex-1", 7)


def test_dev_defaults() -> None:
    args = build_parser().parse_args(["dev"])

    assert args.handler is dev.cmd_dev
    assert (args.runners, args.temporal_port, args.ui_port) == (1, 7233, 8233)
    assert args.data_dir == ".polyfleet/dev"
    # The fleet then serves HTTP where POLYFLEET_HTTP_ADDRESS says (polyfleet.fleet).
    assert args.http_address is None


def test_dev_http_address() -> None:
    args = build_parser().parse_args(["dev", "--http-address", "0.0.0.0:8080"])

    assert args.http_address == "0.0.0.0:8080"


def test_dev_accepts_zero_runners() -> None:
    assert build_parser().parse_args(["dev", "--runners", "0"]).runners == 0


def test_demo_defaults_to_the_example_assistant() -> None:
    args = build_parser().parse_args(["demo"])

    assert args.handler is dev.cmd_demo
    assert args.file is None
    assert dev.default_demo_manifest().is_file()
    assert args.messages is None
    assert dev.DEMO_MESSAGES == ("What is polyfleet?", "What's the weather in Paris?")
    # The example workflow runs after the agent turns unless --no-workflow.
    assert args.no_workflow is False
    assert dev.demo_workflow_manifest().is_file()
    assert (dev.demo_http_dir() / "prices.json").is_file()


def test_demo_no_workflow() -> None:
    args = build_parser().parse_args(["demo", "--no-workflow"])

    assert args.no_workflow is True


def test_demo_messages_repeat() -> None:
    args = build_parser().parse_args(["demo", "-m", "one", "--message", "two"])

    assert args.messages == ["one", "two"]


def test_run_agent_wait_and_timeout() -> None:
    args = build_parser().parse_args(["run", "agent", "a", "-m", "x", "--wait", "--timeout", "1.5"])

    assert (args.wait, args.follow, args.timeout) == (True, False, 1.5)


def test_cancel_wait_defaults() -> None:
    args = build_parser().parse_args(["executions", "cancel", "aex-1", "--wait"])

    assert args.handler is executions.cmd_executions_cancel
    assert (args.wait, args.timeout) == (True, 30.0)


def test_module_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "polyfleet.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0
    assert "usage: polyfleet" in result.stdout
