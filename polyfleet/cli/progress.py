"""Live rendering of an execution's progress as a readable transcript.

The printer is fed the events that ``WatchAgentExecution`` or ``WatchWorkflowExecution``
streams from the execution's event log, then the final execution. Token deltas are
written inline as they arrive, so a user watches the answer being typed; the complete
message that follows the deltas only ends that line instead of repeating it. Tool calls and
sub-agent runs print one line when they start and one when they end::

    → tool get_weather({"city": "Paris"})
    ← get_weather: sunny, 21 °C
    → sub-agent summarizer: Summarize the forecast
    ← summarizer: Sunny and mild.

The tasks of a workflow execution print a line per state (see :mod:`polyfleet.cli.tasks`)::

    ▶ /do/1/fetch (call:http)
    ✓ /do/1/fetch: {"status": 200}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TextIO

from polyfleet.cli.output import (
    format_arguments,
    format_error,
    format_usage,
    has_usage,
    role_name,
    shorten,
    struct_json,
    value_json,
)
from polyfleet.cli.tasks import TASK_SYMBOLS, TaskProgress
from polyfleet.contract import Execution, is_terminal, phase_name
from polyfleet.v1 import agent_execution_pb2, common_pb2, workflow_execution_pb2

_BULLET = "●"
_ARROWS = ("→", "←")
_ASCII_ARROWS = ("->", "<-")
_TOOL_DONE = frozenset(
    {
        common_pb2.TOOL_CALL_STATUS_SUCCEEDED,
        common_pb2.TOOL_CALL_STATUS_FAILED,
        common_pb2.TOOL_CALL_STATUS_CANCELLED,
    }
)


class ProgressPrinter:
    """Renders the events and the outcome of one execution to a text stream.

    The printer is idempotent over repeats: a message, tool call state, error or phase
    that was already shown is not shown again, which makes replays after a reconnect
    harmless.
    """

    def __init__(self, out: TextIO) -> None:
        """Create a printer.

        Args:
            out: Where the transcript goes; flushed after every write so it is live.

        """
        self._out = out
        self._bullet = _BULLET if _can_encode(out, _BULLET) else "*"
        self._call, self._return = _ARROWS if _can_encode(out, "".join(_ARROWS)) else _ASCII_ARROWS
        self._phase: common_pb2.ExecutionPhase.ValueType = common_pb2.EXECUTION_PHASE_UNSPECIFIED
        # ID of the message whose deltas are being written on the current, unfinished line.
        self._streaming: str | None = None
        self._streamed: set[str] = set()
        self._shown_messages: dict[str, str] = {}
        # Tool calls and sub-agent runs, by ID, whose start and end lines are on screen.
        self._started: set[str] = set()
        self._ended: set[str] = set()
        # Results shown from a tool call and from a tool message that the other source has
        # not repeated yet: runners report a result both ways, and it is shown once.
        self._results_from_calls: Counter[tuple[str, str]] = Counter()
        self._results_from_messages: Counter[tuple[str, str]] = Counter()
        self._shown_errors: set[tuple[str, str, str]] = set()
        self._tasks = TaskProgress(unicode=_can_encode(out, TASK_SYMBOLS))

    def event(self, event: common_pb2.ExecutionEvent) -> None:
        """Render one event of the execution's log.

        Args:
            event: The event; its ``update`` carries the delta.

        """
        update = event.update
        phase = update.phase or event.phase
        # A new non-terminal phase heads what follows; a terminal phase closes what precedes.
        self._show_phase(phase, only_if_running=True)
        if update.content_delta:
            self._show_delta(update.delta_message_id, update.content_delta)
        self._show_content(update.messages, update.tool_calls, update.sub_agent_executions)
        for task in update.tasks:
            for line in self._tasks.lines(task):
                self._line(line)
        if update.HasField("error"):
            self._show_error(update.error)
        self._show_phase(phase, only_if_running=False)

    def finish(self, execution: Execution) -> None:
        """Render the outcome once the execution is terminal.

        Args:
            execution: The agent or workflow execution in its final state.

        """
        status = execution.status
        self._show_phase(status.phase, only_if_running=False)
        if status.phase == common_pb2.EXECUTION_PHASE_COMPLETED:
            if isinstance(execution, workflow_execution_pb2.WorkflowExecution):
                self._line(f"Output: {value_json(execution.status.output)}")
            else:
                self._line(f"Final answer: {final_answer(execution.status)}")
                if execution.status.HasField("output"):
                    self._line(f"Structured output: {struct_json(execution.status.output)}")
        elif status.phase == common_pb2.EXECUTION_PHASE_FAILED:
            detail = format_error(status.error) if status.HasField("error") else "no details"
            self._line(f"Failed: {detail}")
        elif status.phase == common_pb2.EXECUTION_PHASE_CANCELLED:
            self._line("Cancelled.")
        if isinstance(execution, agent_execution_pb2.AgentExecution):
            usage = execution.status.usage
            if execution.status.HasField("usage") and has_usage(usage):
                self._line(f"Usage: {format_usage(usage)}")

    def end_line(self) -> None:
        """Finish a line left open by streamed deltas, e.g. before other output."""
        if self._streaming is not None:
            self._streaming = None
            self._write("\n")

    # --- rendering pieces ---------------------------------------------------------------

    def _show_phase(
        self, phase: common_pb2.ExecutionPhase.ValueType, *, only_if_running: bool
    ) -> None:
        if phase == common_pb2.EXECUTION_PHASE_UNSPECIFIED or phase == self._phase:
            return
        if is_terminal(phase) == only_if_running:
            return
        self._phase = phase
        self._line(f"{self._bullet} {phase_name(phase)}")

    def _show_delta(self, message_id: str, delta: str) -> None:
        if self._streaming != message_id:
            self.end_line()
            # Deltas are the model's tokens, so they always belong to an assistant message.
            self._write("assistant: ")
            self._streaming = message_id
            self._streamed.add(message_id)
        self._write(delta)

    def _show_content(
        self,
        messages: Iterable[common_pb2.Message],
        tool_calls: Iterable[common_pb2.ToolCall],
        sub_agents: Iterable[common_pb2.SubAgentExecution],
    ) -> None:
        # The model's message that asks for tools comes before the calls; the tool
        # messages holding their results come after them.
        messages = list(messages)
        for message in messages:
            if message.role != common_pb2.MESSAGE_ROLE_TOOL:
                self._show_message(message)
        for call in tool_calls:
            self._show_tool_call(call)
        for run in sub_agents:
            self._show_sub_agent(run)
        for message in messages:
            if message.role == common_pb2.MESSAGE_ROLE_TOOL:
                self._show_tool_message(message)

    def _show_tool_call(self, call: common_pb2.ToolCall) -> None:
        key = f"tool:{call.id or call.name}"
        if key not in self._started:
            self._started.add(key)
            self._line(f"{self._call} tool {call.name}({format_arguments(call)})")
        failed = bool(call.error) or call.status == common_pb2.TOOL_CALL_STATUS_FAILED
        done = failed or bool(call.result) or call.status in _TOOL_DONE
        if not done or key in self._ended:
            return
        self._ended.add(key)
        if call.status == common_pb2.TOOL_CALL_STATUS_CANCELLED:
            self._line(f"{self._return} {call.name} cancelled")
        elif failed:
            self._line(f"{self._return} {call.name} failed: {shorten(call.error or 'no details')}")
        else:
            self._show_result((call.name, shorten(call.result)), self._results_from_calls)

    def _show_tool_message(self, message: common_pb2.Message) -> None:
        if self._shown_messages.get(message.id) == message.content:
            return
        self._shown_messages[message.id] = message.content
        result = (message.name or "tool", shorten(message.content))
        self._show_result(result, self._results_from_messages)

    def _show_result(self, result: tuple[str, str], shown: Counter[tuple[str, str]]) -> None:
        # `shown` counts this source's results; the other counter holds the other source's.
        other = (
            self._results_from_messages
            if shown is self._results_from_calls
            else self._results_from_calls
        )
        if other[result]:
            other[result] -= 1
            return
        shown[result] += 1
        name, text = result
        self._line(f"{self._return} {name}: {text}")

    def _show_sub_agent(self, run: common_pb2.SubAgentExecution) -> None:
        key = f"sub-agent:{run.id or run.name}"
        if key not in self._started:
            self._started.add(key)
            task = f": {shorten(run.input)}" if run.input else ""
            self._line(f"{self._call} sub-agent {run.name}{task}")
        if not is_terminal(run.phase) or key in self._ended:
            return
        self._ended.add(key)
        if run.phase == common_pb2.EXECUTION_PHASE_COMPLETED:
            self._line(f"{self._return} {run.name}: {shorten(run.output)}")
        elif run.phase == common_pb2.EXECUTION_PHASE_FAILED:
            detail = format_error(run.error) if run.HasField("error") else "no details"
            self._line(f"{self._return} {run.name} failed: {detail}")
        else:
            self._line(f"{self._return} {run.name} cancelled")

    def _show_message(self, message: common_pb2.Message) -> None:
        if message.id in self._streamed:
            # Its text is on screen already, typed by the deltas.
            if self._streaming == message.id:
                self.end_line()
            self._shown_messages[message.id] = message.content
            return
        if not message.content or self._shown_messages.get(message.id) == message.content:
            return
        self._shown_messages[message.id] = message.content
        self._line(f"{role_name(message.role)}: {message.content}")

    def _show_error(self, error: common_pb2.ExecutionError) -> None:
        key = (error.type, error.message, error.step)
        if key not in self._shown_errors:
            self._shown_errors.add(key)
            self._line(f"error: {format_error(error)}")

    def _line(self, text: str) -> None:
        self.end_line()
        self._write(text + "\n")

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


def final_answer(status: agent_execution_pb2.AgentExecutionStatus) -> str:
    """Return an execution's answer: its output text, else its last assistant message.

    Args:
        status: The execution's status.

    Returns:
        The text; empty when there is none.

    """
    if status.output_text:
        return status.output_text
    for message in reversed(status.messages):
        if message.role == common_pb2.MESSAGE_ROLE_ASSISTANT and message.content:
            return message.content
    return ""


def _can_encode(stream: TextIO, text: str) -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True
