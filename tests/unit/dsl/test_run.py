"""`run`: shell and script processes (return modes, limits, refusal, cancel) and subflows."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from polyfleet.dsl import CONFIGURATION, RUNTIME, TIMEOUT, Engine, WorkflowError, load_document
from polyfleet.dsl.reports import ChildWorkflow
from polyfleet.dsl.runtime import ProcessLimits
from polyfleet.dsl.validation import runner_requirements, validate_document
from tests.helpers import assert_eventually
from tests.unit.dsl.support import Hooks, doc, run

BOTH = ProcessLimits(allow=frozenset({"shell", "script"}))


def task(body: str, *, ret: str = "") -> dict[str, Any]:
    extra = f", return: {ret}" if ret else ""
    return doc(f"do:\n  - step:\n      run: {{{body}{extra}}}\n")


def problems(document: dict[str, Any], **kwargs: Any) -> list[tuple[str, str]]:
    return [(p.pointer, p.message) for p in validate_document(document, **kwargs)]


def _value(read: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def probe() -> Any:
        return read()

    return probe


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies nobody reaped do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


# -- shell ------------------------------------------------------------------------------


async def test_shell_outputs_stdout_and_passes_arguments_as_words() -> None:
    document = task("shell: {command: 'printf %s:%s', arguments: ['a b', '$HOME;x']}")
    assert await run(document, processes=BOTH) == "a b:$HOME;x"


async def test_shell_arguments_object_becomes_key_value_words() -> None:
    document = task("shell: {command: 'echo', arguments: {--name: '${ .who }', -v: null}}")
    assert await run(document, {"who": "ann"}, processes=BOTH) == "--name ann -v\n"


async def test_shell_environment_is_only_the_documents_and_a_minimal_path() -> None:
    os.environ["POLYFLEET_TEST_RUNNER_SECRET"] = "s3cret"
    try:
        document = task("shell: {command: env, environment: {GREETING: '${ .g }', N: 3}}")
        out = await run(document, {"g": "hi"}, processes=BOTH)
    finally:
        del os.environ["POLYFLEET_TEST_RUNNER_SECRET"]
    lines = sorted(
        line for line in out.splitlines() if not line.startswith(("PWD=", "SHLVL=", "_="))
    )
    assert lines == ["GREETING=hi", "N=3", "PATH=/usr/local/bin:/usr/bin:/bin"]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("stdout", "out\n"),
        ("stderr", "err\n"),
        ("code", 0),
        ("all", {"code": 0, "stdout": "out\n", "stderr": "err\n"}),
        ("none", None),
    ],
)
async def test_return_modes(mode: str, expected: Any) -> None:
    document = task("shell: {command: 'echo out; echo err >&2'}", ret=mode)
    assert await run(document, processes=BOTH) == expected


async def test_non_zero_exit_raises_a_runtime_error_unless_code_or_all_is_returned() -> None:
    failing = "shell: {command: 'echo broken >&2; exit 3'}"
    with pytest.raises(WorkflowError) as caught:
        await run(task(failing), processes=BOTH)
    assert caught.value.type == RUNTIME
    assert caught.value.title == "Process exited with code 3"
    assert caught.value.detail == "broken"
    assert caught.value.instance == "/do/0/step"
    assert await run(task(failing, ret="code"), processes=BOTH) == 3
    assert (await run(task(failing, ret="all"), processes=BOTH))["code"] == 3


async def test_refused_when_the_host_does_not_allow_the_kind() -> None:
    with pytest.raises(WorkflowError) as caught:
        await run(task("shell: {command: 'echo hi'}"))
    assert caught.value.type == CONFIGURATION
    assert caught.value.instance == "/do/0/step"
    assert "POLYFLEET_RUNNER_ALLOW_RUN includes shell" in caught.value.detail
    script_only = ProcessLimits(allow=frozenset({"script"}))
    with pytest.raises(WorkflowError, match="not enabled"):
        await run(task("shell: {command: 'echo hi'}"), processes=script_only)


async def test_runner_time_limit_kills_the_process() -> None:
    limits = ProcessLimits(allow=frozenset({"shell"}), max_seconds=0.3)
    with pytest.raises(WorkflowError) as caught:
        await run(task("shell: {command: 'sleep 30'}"), processes=limits)
    assert caught.value.type == TIMEOUT
    assert "POLYFLEET_RUNNER_RUN_TIMEOUT" in caught.value.detail


async def test_task_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    document = doc(
        "do:\n"
        "  - step:\n"
        "      timeout: {after: {milliseconds: 500}}\n"
        f"      run: {{shell: {{command: 'echo $$ > {pidfile}; sleep 30; echo late'}}}}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        await run(document, processes=BOTH)
    assert caught.value.type == TIMEOUT
    # The shell and its `sleep` child: the whole group is gone, not only the shell.
    await assert_eventually(
        _value(lambda: _group_alive(int(pidfile.read_text()))), lambda alive: not alive
    )


async def test_output_over_the_limit_fails_the_task() -> None:
    limits = ProcessLimits(allow=frozenset({"shell"}), max_output_bytes=1000)
    with pytest.raises(WorkflowError) as caught:
        await run(task("shell: {command: 'head -c 5000 /dev/zero'}"), processes=limits)
    assert caught.value.type == RUNTIME
    assert "more than 1000 bytes to stdout" in caught.value.detail


async def test_cancelling_the_run_kills_the_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    hooks = Hooks()
    document = task(f"shell: {{command: 'echo $$ > {pidfile}; exec sleep 30'}}")
    engine_run = asyncio.ensure_future(
        run(document, hooks=hooks, processes=BOTH),
    )
    await assert_eventually(_value(lambda: pidfile.exists() and pidfile.read_text().strip()), bool)
    pid = int(pidfile.read_text())
    engine_run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await engine_run
    await assert_eventually(_value(lambda: _group_alive(pid)), lambda alive: not alive)
    assert hooks.last("/do/0/step").phase == "CANCELLED"


# -- script -----------------------------------------------------------------------------


async def test_python_script_with_arguments_and_environment() -> None:
    document = task(
        "script: {language: python, arguments: [x, '${ .n }'], environment: {E: e},"
        " code: 'import os, sys; print(sys.argv[1:], os.environ[\"E\"])'}"
    )
    assert await run(document, {"n": 2}, processes=BOTH) == "['x', '2'] e\n"


async def test_python_script_from_a_file_source(tmp_path: Path) -> None:
    source = tmp_path / "hello.py"
    source.write_text("print('from file')\n")
    document = task(
        f"script: {{language: python, source: {{endpoint: {{uri: 'file://{source}'}}}}}}"
    )
    assert await run(document, processes=BOTH) == "from file\n"


@pytest.mark.skipif(shutil.which("node") is None, reason="no node on PATH")
async def test_js_script_sees_its_arguments_after_its_own_path() -> None:
    document = task("script: {language: js, arguments: [a], code: 'console.log(process.argv[2])'}")
    assert await run(document, processes=BOTH) == "a\n"


async def test_shell_reads_stdin_from_an_expression() -> None:
    document = task("shell: {command: 'cat; echo \" $1\"', arguments: [x], stdin: '${ .m }'}")
    assert await run(document, {"m": "hello"}, processes=BOTH) == "hello x\n"


async def test_stdin_that_is_not_text_is_sent_as_json() -> None:
    code = "import sys, json; print(json.load(sys.stdin)['n'] + 1)"
    document = task(f"script: {{language: python, stdin: '${{ . }}', code: \"{code}\"}}")
    assert await run(document, {"n": 41}, processes=BOTH) == "42\n"


async def test_a_process_that_does_not_read_its_stdin_is_not_an_error() -> None:
    big = "x" * (1 << 20)
    document = task("shell: {command: 'echo done', stdin: '${ .big }'}")
    assert await run(document, {"big": big}, processes=BOTH) == "done\n"


@pytest.mark.parametrize(
    "name", ["run-shell-stdin-and-arguments", "run-script-with-stdin-and-arguments"]
)
async def test_the_specifications_stdin_examples_run(name: str) -> None:
    if "script" in name and shutil.which("node") is None:
        pytest.skip("no node on PATH")
    examples = Path(__file__).parents[2] / "data" / "dsl-spec-examples"
    document = load_document((examples / f"{name}.yaml").read_text(encoding="utf-8"))
    output = await run(document, processes=BOTH)
    if "shell" in name:
        assert output == "STDIN was: Hello World\nARGS are Foo Bar\n"
    else:
        assert "stdin >  Hello Workflow" in output
        assert "arg >  hello" in output
        assert "env >  bar" in output


async def test_js_without_node_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(WorkflowError, match="no `node` on its PATH"):
        await run(task("script: {language: js, code: 'console.log(1)'}"), processes=BOTH)


# -- workflow ---------------------------------------------------------------------------


async def test_run_workflow_asks_the_host_and_outputs_the_childs_output() -> None:
    hooks = Hooks()
    document = task(
        "workflow: {namespace: ns, name: child, version: '1.0.0', input: {v: '${ .x }'}}"
    )
    assert await run(document, {"x": 1}, hooks=hooks) == {"ran": "child", "input": {"v": 1}}
    assert hooks.workflow_calls == [(ChildWorkflow("child", "1.0.0", "ns", {"v": 1}), "/do/0/step")]


async def test_run_workflow_without_await_outputs_the_child_id() -> None:
    hooks = Hooks()
    document = task("workflow: {name: child}, await: false")
    assert await run(document, hooks=hooks) == {"id": "wex-child", "workflow": "child"}
    assert hooks.workflow_calls[0][0].wait is False


async def test_run_workflow_cancel_reaches_the_host_call() -> None:
    hooks = Hooks()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever(_w: ChildWorkflow, _t: str) -> Any:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    hooks.workflow_fn = forever
    running = asyncio.ensure_future(run(task("workflow: {name: child}"), hooks=hooks))
    await started.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert cancelled.is_set()


async def test_run_workflow_errors_from_the_host_fail_the_task() -> None:
    hooks = Hooks()

    async def fail(w: ChildWorkflow, t: str) -> Any:
        raise WorkflowError(
            RUNTIME, title=f"workflow execution wex-1 ({w.name}) ended FAILED", instance=t
        )

    hooks.workflow_fn = fail
    with pytest.raises(WorkflowError, match=r"wex-1 \(child\) ended FAILED"):
        await run(task("workflow: {name: child}"), hooks=hooks)


# -- validation -------------------------------------------------------------------------


def test_container_stays_rejected_at_its_pointer() -> None:
    found = problems(task("container: {image: alpine}"))
    assert len(found) == 1
    assert found[0][0] == "/do/0/step/run/container"
    assert "no container runtime" in found[0][1]


def test_unknown_and_self_workflow_names_are_problems() -> None:
    document = task("workflow: {name: ghost}")
    assert problems(document, known_workflows={"other"}) == [
        ("/do/0/step/run/workflow/name", "unknown workflow 'ghost' (apply it first)")
    ]
    assert problems(document, known_workflows={"ghost"}) == []
    assert problems(document, workflow_name="ghost") == [
        ("/do/0/step/run/workflow/name", "workflow 'ghost' cannot run itself (a cycle)")
    ]
    # An expression is checked when it runs.
    assert problems(task("workflow: {name: '${ .n }'}"), known_workflows=set()) == []


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ("shell: {command: 'x'}, await: false", "/do/0/step/run/await"),
        ("shell: {command: 'x'}, return: everything", "/do/0/step/run/return"),
        ("shell: {cmd: 'x'}", "/do/0/step/run/shell/command"),
        ("script: {language: ruby, code: 'x'}", "/do/0/step/run/script/language"),
        ("script: {language: python}", "/do/0/step/run/script"),
        (
            "script: {language: python, source: {endpoint: 'https://x/y.py'}}",
            "/do/0/step/run/script/source/endpoint",
        ),
        ("workflow: {name: c}, return: all", "/do/0/step/run/return"),
        ("workflow: {name: c, input: [1]}", "/do/0/step/run/workflow/input"),
        ("shell: {command: x}, workflow: {name: c}", "/do/0/step/run"),
    ],
)
def test_invalid_run_tasks(body: str, pointer: str) -> None:
    assert pointer in [p for p, _ in problems(task(body))]


def test_runner_requirements_name_the_tasks() -> None:
    document = doc(
        "do:\n"
        "  - a: {run: {shell: {command: x}}}\n"
        "  - b: {do: [{c: {run: {script: {language: python, code: x}}}}]}\n"
        "  - d: {run: {workflow: {name: w}}}\n"
    )
    assert runner_requirements(document) == {"shell": ["/do/0/a"], "script": ["/do/1/b/do/0/c"]}


def test_engine_accepts_run_documents() -> None:
    Engine(task("shell: {command: x}"), Hooks(), http=None)  # type: ignore[arg-type]
