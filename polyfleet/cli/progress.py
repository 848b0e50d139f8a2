"""Live rendering of an execution's progress as a readable transcript.

The printer is fed the events that ``WatchAgentExecution`` streams from the execution's
event log, then the final execution. Token deltas are written inline as they arrive, so a
user watches the answer being typed; the complete message that follows the deltas
only ends that line instead of repeating it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from polyfleet.cli.output import format_error, format_tool_call, is_terminal, phase_name, role_name
from polyfleet.v1 import agent_execution_pb2, common_pb2

_BULLET = "●"


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
        self._phase: common_pb2.ExecutionPhase.ValueType = common_pb2.EXECUTION_PHASE_UNSPECIFIED
        # ID of the message whose deltas are being written on the current, unfinished line.
        self._streaming: str | None = None
        self._streamed: set[str] = set()
        self._shown_messages: dict[str, str] = {}
        self._shown_tool_calls: set[tuple[str, int, str, str]] = set()
        self._shown_errors: set[tuple[str, str, str]] = set()

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
        self._show_content(update.messages, update.tool_calls)
        if update.HasField("error"):
            self._show_error(update.error)
        self._show_phase(phase, only_if_running=False)

    def finish(self, execution: agent_execution_pb2.AgentExecution) -> None:
        """Render the outcome once the execution is terminal.

        Args:
            execution: The execution in its final state.

        """
        status = execution.status
        self._show_phase(status.phase, only_if_running=False)
        if status.phase == common_pb2.EXECUTION_PHASE_COMPLETED:
            self._line(f"Final answer: {status.output_text or _last_assistant_text(status)}")
        elif status.phase == common_pb2.EXECUTION_PHASE_FAILED:
            detail = format_error(status.error) if status.HasField("error") else "no details"
            self._line(f"Failed: {detail}")
        elif status.phase == common_pb2.EXECUTION_PHASE_CANCELLED:
            self._line("Cancelled.")

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
    ) -> None:
        for message in messages:
            self._show_message(message)
        for call in tool_calls:
            key = (call.id, call.status, call.result, call.error)
            if key not in self._shown_tool_calls:
                self._shown_tool_calls.add(key)
                self._line(format_tool_call(call))

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


def _last_assistant_text(status: agent_execution_pb2.AgentExecutionStatus) -> str:
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
