"""The live progress of workflow executions: task lines, nesting, retries, the outcome."""

from __future__ import annotations

import io
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2

from polyfleet.cli.progress import ProgressPrinter
from polyfleet.cli.tasks import TaskProgress, preview, task_summary
from polyfleet.v1 import common_pb2, workflow_execution_pb2

RUNNING = common_pb2.TASK_PHASE_RUNNING
COMPLETED = common_pb2.TASK_PHASE_COMPLETED
FAILED = common_pb2.TASK_PHASE_FAILED
SKIPPED = common_pb2.TASK_PHASE_SKIPPED
CANCELLED = common_pb2.TASK_PHASE_CANCELLED


def task(
    task_id: str,
    phase: common_pb2.TaskPhase.ValueType,
    kind: str = "set",
    output: Any = None,
    attempts: int = 1,
    **fields: Any,
) -> common_pb2.TaskStatus:
    status = common_pb2.TaskStatus(
        id=task_id, name=task_id.rsplit("/", 1)[-1], type=kind, phase=phase, attempts=attempts
    )
    if output is not None:
        status.output.CopyFrom(json_format.ParseDict(output, struct_pb2.Value()))
    for key, value in fields.items():
        if key == "error":
            status.error.CopyFrom(value)
        else:
            setattr(status, key, value)
    return status


def event(sequence: int, *tasks: common_pb2.TaskStatus, **fields: Any) -> common_pb2.ExecutionEvent:
    return common_pb2.ExecutionEvent(
        execution_id="wex-1",
        sequence=sequence,
        update=common_pb2.ExecutionUpdate(tasks=list(tasks), **fields),
    )


def render(*statuses: common_pb2.TaskStatus) -> list[str]:
    out = io.StringIO()
    printer = ProgressPrinter(out)
    for sequence, status in enumerate(statuses, start=1):
        printer.event(event(sequence, status))
    return out.getvalue().splitlines()


def test_each_phase_has_its_line() -> None:
    error = common_pb2.ExecutionError(
        type="https://serverlessworkflow.io/spec/1.0.0/errors/communication",
        message="communication (503) at /do/2/charge: Service Unavailable",
    )

    lines = render(
        task("/do/0/fetch", RUNNING, "call:http"),
        task("/do/0/fetch", COMPLETED, "call:http", output={"status": 200}),
        task("/do/1/notify", SKIPPED),
        task("/do/2/charge", RUNNING, "call:http"),
        task("/do/2/charge", FAILED, "call:http", error=error),
        task("/do/3/slow", RUNNING, "wait"),
        task("/do/3/slow", CANCELLED, "wait"),
    )

    assert lines == [
        "▶ /do/0/fetch (call:http)",
        '✓ /do/0/fetch: {"status": 200}',
        "↷ /do/1/notify skipped",
        "▶ /do/2/charge (call:http)",
        "✗ /do/2/charge: communication (503) at /do/2/charge: Service Unavailable",
        "▶ /do/3/slow (wait)",
        "■ /do/3/slow cancelled",
    ]


def test_output_previews_are_short_and_on_one_line() -> None:
    long_text = "word " * 100

    (_, line) = render(
        task("/do/0/a", RUNNING), task("/do/0/a", COMPLETED, output={"text": long_text})
    )

    assert line == '✓ /do/0/a: {"text": "word word word …"}'


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ({"a": 1, "b": [1, 2]}, '{"a": 1, "b": [1, 2]}'),
        ("short", '"short"'),
        (None, "null"),
        (
            {"about": "x" * 100, "items": [{"sku": "book"}] * 2, "n": 7, "o": {"k": 1}},
            '{"about": "xxxxxxxxxxxxxxx…", "items": [2 items], "n": 7, "o": {…}}',
        ),
        (
            {"one": [1], "text": "z" * 100},
            '{"one": [1 item], "text": "zzzzzzzzzzzzzzz…"}',
        ),
        (list(range(50)), "[50 items]"),
        ("y" * 100, '"' + "y" * 78 + "…"),
        (
            {f"key{i}": i for i in range(30)},
            '{"key0": 0, "key1": 1, "key10": 10, "key11": 11, "key12": 12, "key13": 13, "key…',
        ),
    ],
    ids=["fits", "string", "null", "object", "one item", "list", "long string", "many keys"],
)
def test_preview_keeps_the_shape_of_long_values(output: Any, expected: str) -> None:
    value = json_format.ParseDict(output, struct_pb2.Value())

    text = preview(value)

    assert text == expected
    assert len(text) <= 80


def test_a_task_without_output_completes_without_a_preview() -> None:
    assert render(task("/do/0/a", COMPLETED)) == ["✓ /do/0/a"]


def test_nested_tasks_are_indented_under_their_running_parent() -> None:
    lines = render(
        task("/do/0/loop", RUNNING, "for"),
        task("/do/0/loop/for/0/do/0/step", RUNNING),
        task("/do/0/loop/for/0/do/0/step", COMPLETED, output=1),
        task("/do/0/loop", COMPLETED, "for", output=[1]),
        task("/do/1/par", RUNNING, "fork"),
        task("/do/1/par/fork/branches/0/a", RUNNING, "do"),
        task("/do/1/par/fork/branches/0/a/do/0/deep", RUNNING),
    )

    assert lines == [
        "▶ /do/0/loop (for)",
        "  ▶ /do/0/loop/for/0/do/0/step (set)",
        "  ✓ /do/0/loop/for/0/do/0/step: 1",
        "✓ /do/0/loop: [1]",
        "▶ /do/1/par (fork)",
        "  ▶ /do/1/par/fork/branches/0/a (do)",
        "    ▶ /do/1/par/fork/branches/0/a/do/0/deep (set)",
    ]


def test_a_retried_task_prints_again_with_its_attempt() -> None:
    error = common_pb2.ExecutionError(message="communication (503)")

    lines = render(
        task("/do/0/t/try/0/call", RUNNING, "call:http"),
        task("/do/0/t/try/0/call", FAILED, "call:http", error=error),
        task("/do/0/t/try/0/call", RUNNING, "call:http", attempts=2),
        task("/do/0/t/try/0/call", COMPLETED, "call:http", output="ok", attempts=2),
    )

    assert lines == [
        "▶ /do/0/t/try/0/call (call:http)",
        "✗ /do/0/t/try/0/call: communication (503)",
        "▶ /do/0/t/try/0/call (call:http, attempt 2)",
        '✓ /do/0/t/try/0/call: "ok"',
    ]


def test_repeated_statuses_print_once() -> None:
    running = task("/do/0/a", RUNNING)

    assert render(running, running, task("/do/0/a", COMPLETED), task("/do/0/a", COMPLETED)) == [
        "▶ /do/0/a (set)",
        "✓ /do/0/a",
    ]


def test_an_agent_call_names_its_child_execution_once() -> None:
    lines = render(
        task("/do/0/ask", RUNNING, "call:agent"),
        task("/do/0/ask", RUNNING, "call:agent", agent_execution_id="aex-7"),
        task("/do/0/ask", COMPLETED, "call:agent", output="hi", agent_execution_id="aex-7"),
    )

    assert lines == [
        "▶ /do/0/ask (call:agent)",
        "↳ /do/0/ask: agent execution aex-7",
        '✓ /do/0/ask: "hi"',
    ]


def test_a_subflow_names_its_child_workflow_execution_once() -> None:
    lines = render(
        task("/do/0/sub", RUNNING, "run:workflow", workflow_execution_id="wex-7"),
        task(
            "/do/0/sub", COMPLETED, "run:workflow", output={"n": 1}, workflow_execution_id="wex-7"
        ),
    )

    assert lines == [
        "▶ /do/0/sub (run:workflow)",
        "↳ /do/0/sub: workflow execution wex-7",
        '✓ /do/0/sub: {"n": 1}',
    ]


def test_ascii_stand_ins_for_terminals_without_unicode() -> None:
    progress = TaskProgress(unicode=False)

    lines = [
        *progress.lines(task("/do/0/a", RUNNING)),
        *progress.lines(task("/do/0/a", COMPLETED)),
        *progress.lines(task("/do/1/b", SKIPPED)),
    ]

    assert lines == ["> /do/0/a (set)", "+ /do/0/a", "~ /do/1/b skipped"]


def test_a_stream_that_cannot_encode_the_symbols_gets_ascii() -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    printer = ProgressPrinter(out)

    printer.event(event(1, task("/do/0/a", FAILED, error=common_pb2.ExecutionError(type="x"))))

    assert raw.getvalue().decode() == "x /do/0/a: x\n"


def test_phases_tasks_and_the_output_in_order() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out)
    output = json_format.ParseDict({"total": 6, "names": ["a"]}, struct_pb2.Value())
    execution = workflow_execution_pb2.WorkflowExecution(id="wex-1")
    execution.status.phase = common_pb2.EXECUTION_PHASE_COMPLETED
    execution.status.output.CopyFrom(output)

    printer.event(event(1, phase=common_pb2.EXECUTION_PHASE_RUNNING))
    printer.event(event(2, task("/do/0/a", RUNNING)))
    printer.event(event(3, task("/do/0/a", COMPLETED, output={"total": 6})))
    printer.event(event(4, workflow_output=output))
    printer.event(event(5, phase=common_pb2.EXECUTION_PHASE_COMPLETED))
    printer.finish(execution)

    assert out.getvalue().splitlines() == [
        "● RUNNING",
        "▶ /do/0/a (set)",
        '✓ /do/0/a: {"total": 6}',
        "● COMPLETED",
        'Output: {"names": ["a"], "total": 6}',
    ]


def test_a_failed_workflow_ends_with_its_error_and_no_usage() -> None:
    out = io.StringIO()
    execution = workflow_execution_pb2.WorkflowExecution(id="wex-1")
    execution.status.phase = common_pb2.EXECUTION_PHASE_FAILED
    execution.status.error.CopyFrom(
        common_pb2.ExecutionError(type="WorkflowError", message="boom at /do/1/x")
    )

    ProgressPrinter(out).finish(execution)

    assert out.getvalue().splitlines() == ["● FAILED", "Failed: WorkflowError: boom at /do/1/x"]


def test_a_completed_workflow_without_output_shows_null() -> None:
    out = io.StringIO()
    execution = workflow_execution_pb2.WorkflowExecution(id="wex-1")
    execution.status.phase = common_pb2.EXECUTION_PHASE_COMPLETED

    ProgressPrinter(out).finish(execution)

    assert out.getvalue().splitlines()[-1] == "Output: null"


def test_task_summary_for_executions_get() -> None:
    error = common_pb2.ExecutionError(message="boom")

    assert task_summary(task("/do/0/a", COMPLETED, output={"x": 1})) == (
        'COMPLETED  /do/0/a (set) -> {"x": 1}'
    )
    assert task_summary(
        task("/do/1/ask", COMPLETED, "call:agent", "hi", attempts=2, agent_execution_id="aex-3")
    ) == ('COMPLETED  /do/1/ask (call:agent, 2 attempts, agent execution aex-3) -> "hi"')
    assert task_summary(task("/do/2/b", FAILED, error=error)) == (
        "FAILED     /do/2/b (set) -> error: boom"
    )
    assert task_summary(task("/do/3/c", SKIPPED)) == "SKIPPED    /do/3/c (set)"
