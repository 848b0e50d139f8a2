"""Ordered, batched progress reports to RunnerService.

The agent's graph must not wait for the orchestrator on every token, so reports go
into an outbox that one sender task drains in order. Token deltas are coalesced per
message for ``flush_interval`` (about 100 ms) so a long answer is a handful of
reports, not one per token; any other report first flushes the pending delta, so a
watcher always sees a message's deltas before the message itself.

A message's deltas are redacted as one stream, not batch by batch: a secret split
across two batches would match in neither. Each flush sends the part of the message's
text that cannot hold the start of a secret (``Redactor.stream_cut``) and holds the
rest back, raw and never sent, until more text arrives, the completed message is sent,
or the reporter is flushed or closed.

Reports that wait in the outbox while the previous one is in flight go out together as
one report (:func:`coalesce`), where one ``ExecutionUpdate`` can carry them in the order
they were queued. Nothing waits for that; a no-op agent turn then takes two to four calls
instead of five, as the orchestrator's answers come. A phase change always starts a report
of its own. The run's turn for the session's thread rides on its last report
(``send(update, thread_append=...)``), so the answer and the turn are one call.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from polyfleet import contract
from polyfleet.redaction import Redactor
from polyfleet.usage import add_usage
from polyfleet.v1 import common_pb2, runner_pb2
from runner.errors import OutputTooLargeError


class ReportSink(Protocol):
    """Where reports go: :class:`runner.runner_client.RunnerClient` in production."""

    async def report(
        self,
        execution_id: str,
        report_id: str,
        update: common_pb2.ExecutionUpdate,
        thread_append: runner_pb2.AppendThreadMessagesRequest | None = None,
    ) -> object:
        """Deliver one report (with messages for the thread); retries reuse ``report_id``."""


def scrub_update(update: common_pb2.ExecutionUpdate, scrub: Callable[[str], str]) -> None:
    """Remove secret values from every free-text field of ``update``, in place."""
    for message in update.messages:
        message.content = scrub(message.content)
    for call in update.tool_calls:
        call.result = scrub(call.result)
        call.error = scrub(call.error)
    for run in update.sub_agent_executions:
        run.input = scrub(run.input)
        run.output = scrub(run.output)
        if run.HasField("error"):  # touching an unset sub-message would set it
            run.error.message = scrub(run.error.message)
    update.output_text = scrub(update.output_text)
    update.content_delta = scrub(update.content_delta)
    if update.HasField("error"):
        update.error.message = scrub(update.error.message)


# Where each field of a report is applied and shown, in this order, whatever the order of
# the reports it came in (orchestrator/status.py merges, polyfleet/cli/progress.py renders):
# a report can absorb a later one only if nothing of the later one ranks before it.
_RANK = {
    "content_delta": 1,
    "delta_message_id": 1,
    "messages": 2,
    "tool_calls": 3,
    "sub_agent_executions": 4,
    "tasks": 5,
    "error": 6,
}
# Lists upserted by ID: two reports' items in queue order merge as the reports would.
_LISTS = frozenset({"messages", "tool_calls", "sub_agent_executions", "tasks"})
# Merged whatever their order: totals added, or set once.
_UNORDERED = frozenset({"usage", "output_text", "output", "workflow_output"})
# Set at most once in a report.
_SINGLE = frozenset({"error", "output_text", "output", "workflow_output"})
# Largest report that absorbs others: far below gRPC's message limits.
COALESCE_MAX_BYTES = 64 * 1024


def coalesce(into: common_pb2.ExecutionUpdate, update: common_pb2.ExecutionUpdate) -> bool:
    """Merge ``update``, queued after ``into``, into ``into`` if one report can carry both.

    The orchestrator (and every watcher) must end up where the two reports one after the
    other would have left it: ``update`` changes no phase; it sets no single field
    ``into`` sets; a delta joins only ``into``'s delta of the same message; nothing of it
    ranks before what ``into`` holds (:data:`_RANK`: a message's deltas before the
    message, a message before the tool calls it asks for); usage is added as the
    orchestrator adds it; and the result stays under :data:`COALESCE_MAX_BYTES`. Fields
    this function does not know are never merged.

    Returns:
        Whether ``update`` was merged (``into`` changed); if not, neither changed.

    """
    fields = [field.name for field, _ in update.ListFields()]
    if not fields:
        return True
    held = [field.name for field, _ in into.ListFields()]
    if any(name not in _RANK and name not in _UNORDERED for name in fields):
        return False  # a phase change, or a field added later
    if any(name in _SINGLE for name in fields if name in held):
        return False
    first = min((_RANK[name] for name in fields if name in _RANK), default=None)
    last = max((_RANK[name] for name in held if name in _RANK), default=0)
    if first is not None and first <= last:
        same_list = first == last and all(
            name in _LISTS or name in _UNORDERED for name in fields if _RANK.get(name) == last
        )
        same_stream = (
            first == last == _RANK["content_delta"]
            and into.delta_message_id == update.delta_message_id
        )
        if not (same_list or same_stream):
            return False
    if into.ByteSize() + update.ByteSize() > COALESCE_MAX_BYTES:
        return False
    if update.HasField("usage"):
        add_usage(into.usage, update.usage)
    if update.content_delta:
        into.content_delta += update.content_delta
        into.delta_message_id = update.delta_message_id
    into.messages.extend(update.messages)
    into.tool_calls.extend(update.tool_calls)
    into.sub_agent_executions.extend(update.sub_agent_executions)
    into.tasks.extend(update.tasks)
    if update.HasField("error"):
        into.error.CopyFrom(update.error)
    if update.output_text:
        into.output_text = update.output_text
    if update.HasField("output"):
        into.output.CopyFrom(update.output)
    if update.HasField("workflow_output"):
        into.workflow_output.CopyFrom(update.workflow_output)
    return True


def check_output_size(update: common_pb2.ExecutionUpdate, limit: int) -> None:
    """Fail before sending an output the orchestrator would refuse (0: no limit).

    Raises:
        OutputTooLargeError: Names the output, its size and the limit.

    """
    for _, what, size in contract.oversized_outputs(update, limit):
        OutputTooLargeError.check(what, size, limit)


@dataclass
class _Report:
    """An outbox entry: a numbered report and the thread messages riding on it."""

    report_id: str
    update: common_pb2.ExecutionUpdate
    thread_append: runner_pb2.AppendThreadMessagesRequest | None = None


class _Flushed:
    """Outbox marker: resolved once every report queued before it was sent."""

    def __init__(self) -> None:
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class ProgressReporter:
    """Sends one execution's progress reports in order, with batched token deltas.

    Report IDs are ``<prefix>/<n>``, numbered when a report is queued, so the IDs of
    one activity attempt are deterministic and a report retried by the RunnerService
    client keeps its ID. Use as an async context manager; ``close()`` sends whatever
    is pending, ``abort()`` drops it (cancellation).
    """

    # Seconds a failing run may spend sending its last reports.
    _FAILURE_FLUSH_TIMEOUT = 5.0

    def __init__(
        self,
        sink: ReportSink,
        execution_id: str,
        prefix: str,
        flush_interval: float = 0.1,
    ) -> None:
        self.execution_id = execution_id
        # The secrets to hide (``Secrets.redactor``); none until the runner sets them.
        self.redactor = Redactor(())
        # The orchestrator's limit on outputs (its context response says it); 0: none.
        self.max_output_bytes = 0
        self.usage = common_pb2.Usage()
        self._sink = sink
        self._prefix = prefix
        self._counter = itertools.count(1)
        self._interval = flush_interval
        self._outbox: collections.deque[_Report | _Flushed] = collections.deque()
        self._queued = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._delta_id = ""
        self._delta_parts: list[str] = []
        # Per message: streamed text held back, unredacted and unsent (see the module doc).
        self._held: dict[str, str] = {}
        self._timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> ProgressReporter:
        self._sender = asyncio.create_task(self._send_all(), name=f"progress {self.execution_id}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if exc[0] is None:
            await self.close()
        elif isinstance(exc[1], asyncio.CancelledError):
            await self.abort()  # stop promptly; the workflow records the cancellation
        else:
            # A failing run still reports what it did up to the failure (the failed
            # tool call, the sub-agent run); the original error is what propagates.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.close(), self._FAILURE_FLUSH_TIMEOUT)
            await self.abort()

    def next_id(self) -> str:
        """A fresh report ID, also used for idempotent thread appends."""
        return f"{self._prefix}/{next(self._counter)}"

    def send(
        self,
        update: common_pb2.ExecutionUpdate,
        thread_append: runner_pb2.AppendThreadMessagesRequest | None = None,
    ) -> None:
        """Queue a report after any pending delta.

        Args:
            update: The report.
            thread_append: Messages for the session's thread, appended by the
                orchestrator once this report is applied (the run's turn, on its last
                report); a report that absorbs this one carries them.

        Raises:
            OutputTooLargeError: An output or message in ``update`` is over
                ``max_output_bytes``: the orchestrator would refuse it.
            Exception: The sender already failed (e.g. ``ExecutionClosedError``).

        """
        self._raise_if_failed()
        check_output_size(update, self.max_output_bytes)
        self._flush_deltas()
        # A completed message ends its stream: what was held back goes before it.
        for message in update.messages:
            self._release(message.id)
        self._enqueue(update, thread_append)

    def delta(self, message_id: str, text: str) -> None:
        """Queue streamed text of ``message_id``; sent within ``flush_interval``."""
        self._raise_if_failed()
        if not text:
            return
        if self._delta_parts and message_id != self._delta_id:
            self._flush_deltas()
        self._delta_id = message_id
        self._delta_parts.append(text)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._flush_deltas)

    async def flush(self) -> None:
        """Wait until every report queued so far was acknowledged.

        Raises:
            Exception: Sending a report failed.

        """
        self._raise_if_failed()
        self._flush_deltas()
        for message_id in list(self._held):
            self._release(message_id)
        marker = _Flushed()
        self._put(marker)
        sender = self._sender
        if sender is None:
            raise RuntimeError("ProgressReporter used outside 'async with'")
        await asyncio.wait({marker.done, sender}, return_when=asyncio.FIRST_COMPLETED)
        self._raise_if_failed()

    async def close(self) -> None:
        """Send everything pending, then stop the sender."""
        try:
            await self.flush()
        finally:
            await self.abort()

    async def abort(self) -> None:
        """Stop at once, dropping reports not sent yet."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._delta_parts.clear()
        self._held.clear()
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender

    @property
    def failed(self) -> bool:
        """Whether sending stopped on an error; ``send`` and ``delta`` would raise it."""
        sender = self._sender
        return sender is not None and sender.done() and not sender.cancelled()

    def _raise_if_failed(self) -> None:
        sender = self._sender
        if sender is not None and sender.done() and not sender.cancelled():
            error = sender.exception()
            if error is not None:
                raise error

    def _flush_deltas(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._delta_parts:
            return
        text = self._held.pop(self._delta_id, "") + "".join(self._delta_parts)
        self._delta_parts.clear()
        cut = self.redactor.stream_cut(text)
        if cut < len(text):
            self._held[self._delta_id] = text[cut:]
        self._send_delta(self._delta_id, text[:cut])

    def _release(self, message_id: str) -> None:
        """Send what is held back of ``message_id``'s stream: the message is complete."""
        self._send_delta(message_id, self._held.pop(message_id, ""))

    def _send_delta(self, message_id: str, text: str) -> None:
        if text:
            self._enqueue(
                common_pb2.ExecutionUpdate(content_delta=text, delta_message_id=message_id)
            )

    def _enqueue(
        self,
        update: common_pb2.ExecutionUpdate,
        thread_append: runner_pb2.AppendThreadMessagesRequest | None = None,
    ) -> None:
        scrub_update(update, self.redactor.text)
        if update.HasField("usage"):
            add_usage(self.usage, update.usage)
        self._put(_Report(self.next_id(), update, thread_append))

    def _put(self, item: _Report | _Flushed) -> None:
        self._outbox.append(item)
        self._queued.set()

    async def _send_all(self) -> None:
        outbox = self._outbox
        while True:
            if not outbox:
                self._queued.clear()
                await self._queued.wait()
                continue
            item = outbox.popleft()
            if isinstance(item, _Flushed):
                item.done.set_result(None)
                continue
            # The report keeps its own ID; those of the reports it absorbs go unused.
            update, thread_append = item.update, item.thread_append
            while outbox:
                following = outbox[0]
                if isinstance(following, _Flushed) or not coalesce(update, following.update):
                    break
                thread_append = following.thread_append or thread_append
                outbox.popleft()
            await self._sink.report(self.execution_id, item.report_id, update, thread_append)
