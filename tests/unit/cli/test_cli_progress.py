"""The live progress transcript, fed with synthetic events."""

from __future__ import annotations

import io
from typing import Any

from polyfleet.cli.progress import ProgressPrinter
from polyfleet.v1 import agent_execution_pb2, common_pb2

ASSISTANT = common_pb2.MESSAGE_ROLE_ASSISTANT
RUNNING = common_pb2.EXECUTION_PHASE_RUNNING
COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED
FAILED = common_pb2.EXECUTION_PHASE_FAILED


class FlushRecorder(io.StringIO):
    """Remembers the text present at every flush, to prove output is written live."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[str] = []

    def flush(self) -> None:
        super().flush()
        self.flushed.append(self.getvalue())


def event(sequence: int, **fields: Any) -> common_pb2.ExecutionEvent:
    return common_pb2.ExecutionEvent(
        execution_id="aex-1", sequence=sequence, update=common_pb2.ExecutionUpdate(**fields)
    )


def message(
    msg_id: str, content: str, role: common_pb2.MessageRole.ValueType = ASSISTANT
) -> common_pb2.Message:
    return common_pb2.Message(id=msg_id, role=role, content=content)


def render(*events: common_pb2.ExecutionEvent) -> str:
    out = io.StringIO()
    printer = ProgressPrinter(out)
    for item in events:
        printer.event(item)
    return out.getvalue()


def test_phase_changes_print_one_line_each() -> None:
    text = render(
        event(1, phase=common_pb2.EXECUTION_PHASE_PENDING),
        event(2, phase=RUNNING),
        event(3, phase=RUNNING),
    )

    assert text == "● PENDING\n● RUNNING\n"


def test_event_phase_is_used_when_the_update_has_none() -> None:
    item = event(1, output_text="x")
    item.phase = RUNNING

    assert render(item) == "● RUNNING\n"


def test_deltas_stream_inline_and_the_complete_message_only_ends_the_line() -> None:
    out = FlushRecorder()
    printer = ProgressPrinter(out)

    printer.event(event(1, phase=RUNNING))
    printer.event(event(2, content_delta="The capital", delta_message_id="m1"))
    assert out.flushed[-1].endswith("assistant: The capital")
    printer.event(event(3, content_delta=" is Paris.", delta_message_id="m1"))
    assert out.flushed[-1].endswith("assistant: The capital is Paris.")
    printer.event(event(4, messages=[message("m1", "The capital is Paris.")]))
    printer.event(event(5, phase=COMPLETED, output_text="The capital is Paris."))

    assert out.getvalue() == ("● RUNNING\nassistant: The capital is Paris.\n● COMPLETED\n")


def test_messages_without_deltas_are_printed_with_their_role() -> None:
    text = render(
        event(1, messages=[message("m1", "Hello there.")]),
        event(2, messages=[message("s1", "EnsureThread failed", common_pb2.MESSAGE_ROLE_SYSTEM)]),
    )

    assert text == "assistant: Hello there.\nsystem: EnsureThread failed\n"


def test_repeated_messages_are_printed_once() -> None:
    first = event(1, messages=[message("m1", "Same.")])

    assert render(first, first) == "assistant: Same.\n"


def test_other_output_ends_an_open_delta_line_first() -> None:
    text = render(
        event(1, content_delta="thinking", delta_message_id="m1"),
        event(2, error=common_pb2.ExecutionError(type="ModelProviderError", message="boom")),
    )

    assert text == "assistant: thinking\nerror: ModelProviderError: boom\n"


def test_a_new_delta_message_starts_a_new_line() -> None:
    text = render(
        event(1, content_delta="one", delta_message_id="m1"),
        event(2, content_delta="two", delta_message_id="m2"),
        event(3, messages=[message("m1", "one"), message("m2", "two")]),
    )

    assert text == "assistant: one\nassistant: two\n"


def test_a_tool_call_prints_its_start_then_its_result_once() -> None:
    call = common_pb2.ToolCall(
        id="t1", name="get_weather", status=common_pb2.TOOL_CALL_STATUS_RUNNING
    )
    call.arguments.update({"city": "Paris", "days": 3})
    done = common_pb2.ToolCall()
    done.CopyFrom(call)
    done.status = common_pb2.TOOL_CALL_STATUS_SUCCEEDED
    done.result = "sunny,\n21 °C"

    text = render(
        event(1, tool_calls=[call]),
        event(2, tool_calls=[call]),
        event(3, tool_calls=[done]),
        event(4, tool_calls=[done]),
    )

    assert text.splitlines() == [
        '→ tool get_weather({"city": "Paris", "days": 3})',
        "← get_weather: sunny, 21 °C",
    ]


def test_a_tool_call_first_seen_finished_prints_both_lines() -> None:
    failed = common_pb2.ToolCall(
        id="t2", name="fetch", status=common_pb2.TOOL_CALL_STATUS_FAILED, error="timeout"
    )

    assert render(event(1, tool_calls=[failed])).splitlines() == [
        "→ tool fetch({})",
        "← fetch failed: timeout",
    ]


def test_tool_messages_repeating_a_result_are_not_printed_twice() -> None:
    call = common_pb2.ToolCall(
        id="t1", name="add", status=common_pb2.TOOL_CALL_STATUS_SUCCEEDED, result="5"
    )
    tool_message = common_pb2.Message(
        id="m-tool", role=common_pb2.MESSAGE_ROLE_TOOL, name="add", content="5"
    )
    other = common_pb2.Message(
        id="m-other", role=common_pb2.MESSAGE_ROLE_TOOL, name="lookup", content="found"
    )

    text = render(event(1, tool_calls=[call], messages=[tool_message]), event(2, messages=[other]))

    assert text.splitlines() == ["→ tool add({})", "← add: 5", "← lookup: found"]


def test_the_same_result_of_two_calls_is_printed_for_each() -> None:
    calls = [
        common_pb2.ToolCall(
            id=f"t{n}", name="add", status=common_pb2.TOOL_CALL_STATUS_SUCCEEDED, result="5"
        )
        for n in (1, 2)
    ]
    messages = [
        common_pb2.Message(id=f"m{n}", role=common_pb2.MESSAGE_ROLE_TOOL, name="add", content="5")
        for n in (1, 2)
    ]

    # The messages may also arrive before the calls finish.
    text = render(
        event(1, messages=messages[:1]), event(2, tool_calls=calls, messages=messages[1:])
    )

    assert text.splitlines() == [
        "← add: 5",
        "→ tool add({})",
        "→ tool add({})",
        "← add: 5",
    ]


def test_sub_agent_runs_print_their_task_and_outcome() -> None:
    run = common_pb2.SubAgentExecution(
        id="s1", name="summarizer", input="Summarize this", phase=RUNNING
    )
    done = common_pb2.SubAgentExecution()
    done.CopyFrom(run)
    done.phase = COMPLETED
    done.output = "Short."
    broken = common_pb2.SubAgentExecution(
        id="s2",
        name="checker",
        phase=FAILED,
        error=common_pb2.ExecutionError(type="ModelProviderError", message="429"),
    )

    text = render(
        event(1, sub_agent_executions=[run]),
        event(2, sub_agent_executions=[done, broken]),
        event(3, sub_agent_executions=[done]),
    )

    assert text.splitlines() == [
        "→ sub-agent summarizer: Summarize this",
        "← summarizer: Short.",
        "→ sub-agent checker",
        "← checker failed: ModelProviderError: 429",
    ]


def test_arrows_fall_back_to_ascii_when_the_stream_cannot_encode_them() -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    call = common_pb2.ToolCall(
        id="t1", name="add", status=common_pb2.TOOL_CALL_STATUS_SUCCEEDED, result="5"
    )

    ProgressPrinter(out).event(event(1, tool_calls=[call]))

    out.flush()
    assert raw.getvalue() == b"-> tool add({})\n<- add: 5\n"


def test_errors_print_type_and_message_once() -> None:
    error = common_pb2.ExecutionError(type="AgentNotFound", message="no agent x")

    assert render(event(1, error=error), event(2, error=error)) == (
        "error: AgentNotFound: no agent x\n"
    )


def test_terminal_phase_follows_the_content_of_the_same_update() -> None:
    text = render(event(1, phase=COMPLETED, messages=[message("m1", "Done.")]))

    assert text == "assistant: Done.\n● COMPLETED\n"


def test_finish_prints_the_final_answer() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out)
    printer.event(event(1, phase=COMPLETED))
    execution = agent_execution_pb2.AgentExecution(
        status=agent_execution_pb2.AgentExecutionStatus(phase=COMPLETED, output_text="Paris.")
    )

    printer.finish(execution)

    assert out.getvalue() == "● COMPLETED\nFinal answer: Paris.\n"


def test_finish_prints_structured_output_and_usage() -> None:
    out = io.StringIO()
    status = agent_execution_pb2.AgentExecutionStatus(
        phase=COMPLETED,
        output_text='{"answer": "Paris"}',
        usage=common_pb2.Usage(
            input_tokens=1200,
            output_tokens=34,
            total_tokens=1234,
            model_calls=2,
            cost=0.0001234,
            currency="EUR",
        ),
    )
    status.output.update({"answer": "Paris", "confidence": 1})

    ProgressPrinter(out).finish(agent_execution_pb2.AgentExecution(status=status))

    assert out.getvalue().splitlines() == [
        "● COMPLETED",
        'Final answer: {"answer": "Paris"}',
        'Structured output: {"answer": "Paris", "confidence": 1}',
        "Usage: 1234 tokens (1200 in, 34 out), 2 model calls, cost 0.0001234 EUR",
    ]


def test_usage_without_cost_leaves_the_cost_out() -> None:
    out = io.StringIO()
    status = agent_execution_pb2.AgentExecutionStatus(
        phase=FAILED, usage=common_pb2.Usage(input_tokens=3, output_tokens=4)
    )

    ProgressPrinter(out).finish(agent_execution_pb2.AgentExecution(status=status))

    assert out.getvalue().splitlines()[-1] == "Usage: 7 tokens (3 in, 4 out)"


def test_finish_prints_the_error_of_a_failed_execution() -> None:
    out = io.StringIO()
    execution = agent_execution_pb2.AgentExecution(
        status=agent_execution_pb2.AgentExecutionStatus(
            phase=FAILED,
            error=common_pb2.ExecutionError(
                type="ModelProviderError", message="told to fail", step="ExecuteGraphton"
            ),
        )
    )

    ProgressPrinter(out).finish(execution)

    assert out.getvalue() == (
        "● FAILED\nFailed: ModelProviderError: told to fail (step ExecuteGraphton)\n"
    )


def test_finish_ends_an_open_line() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out)
    printer.event(event(1, content_delta="partial", delta_message_id="m1"))
    execution = agent_execution_pb2.AgentExecution(
        status=agent_execution_pb2.AgentExecutionStatus(phase=common_pb2.EXECUTION_PHASE_CANCELLED)
    )

    printer.finish(execution)

    assert out.getvalue() == "assistant: partial\n● CANCELLED\nCancelled.\n"


def test_bullet_falls_back_to_ascii_when_the_stream_cannot_encode_it() -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")

    ProgressPrinter(out).event(event(1, phase=RUNNING))

    out.flush()
    assert raw.getvalue() == b"* RUNNING\n"
