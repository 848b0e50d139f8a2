"""The progress outbox: order, batched deltas, coalesced reports, stable IDs, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from orchestrator.status import merge_agent_update
from polyfleet.redaction import REDACTED, Redactor
from polyfleet.v1 import agent_execution_pb2, common_pb2, runner_pb2
from runner.errors import ExecutionClosedError
from runner.progress import COALESCE_MAX_BYTES, ProgressReporter, coalesce
from tests.helpers import assert_eventually


class Sink:
    """Records reports; optionally slow or failing."""

    def __init__(self, delay: float = 0.0, fail_on: int = 0) -> None:
        self.reports: list[tuple[str, common_pb2.ExecutionUpdate]] = []
        # The thread messages each report carried (None: none), by report ID.
        self.appends: dict[str, runner_pb2.AppendThreadMessagesRequest | None] = {}
        self.delay = delay
        self.fail_on = fail_on

    async def report(
        self,
        execution_id: str,
        report_id: str,
        update: common_pb2.ExecutionUpdate,
        thread_append: runner_pb2.AppendThreadMessagesRequest | None = None,
    ) -> None:
        assert execution_id == "aex-1"
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_on and len(self.reports) + 1 == self.fail_on:
            raise ExecutionClosedError("execution aex-1 is already CANCELLED")
        self.reports.append((report_id, update))
        self.appends[report_id] = thread_append

    @property
    def updates(self) -> list[common_pb2.ExecutionUpdate]:
        return [u for _, u in self.reports]

    @property
    def items(self) -> list[tuple[str, str, str]]:
        """What the reports carried, in the order a watcher sees it, whatever the batching.

        A message's consecutive deltas are joined: a watcher appends them.
        """
        items: list[tuple[str, str, str]] = []
        for item in (item for update in self.updates for item in _items(update)):
            kind, key, text = item
            if kind == "delta" and items and items[-1][:2] == (kind, key):
                items[-1] = (kind, key, items[-1][2] + text)
            else:
                items.append(item)
        return items


def _items(update: common_pb2.ExecutionUpdate) -> list[tuple[str, str, str]]:
    # The order in which the orchestrator applies and the CLI shows one report's parts.
    items = [("delta", update.delta_message_id, update.content_delta)] * bool(update.content_delta)
    items += [("message", m.id, m.content) for m in update.messages]
    items += [
        ("tool_call", c.id, common_pb2.ToolCallStatus.Name(c.status)) for c in update.tool_calls
    ]
    return items


def _message(content: str) -> common_pb2.ExecutionUpdate:
    return common_pb2.ExecutionUpdate(
        messages=[
            common_pb2.Message(id="m1", role=common_pb2.MESSAGE_ROLE_ASSISTANT, content=content)
        ]
    )


async def test_fast_deltas_are_batched_per_interval() -> None:
    sink = Sink()
    async with ProgressReporter(sink, "aex-1", "run/2/1", flush_interval=0.05) as progress:
        for i in range(200):  # ~0.2 s of tokens, one every millisecond
            progress.delta("m1", f"t{i} ")
            await asyncio.sleep(0.001)
    deltas = [u.content_delta for u in sink.updates]
    assert "".join(deltas) == "".join(f"t{i} " for i in range(200))
    assert 2 <= len(deltas) <= 10  # not one report per token
    assert {u.delta_message_id for u in sink.updates} == {"m1"}


async def test_pending_deltas_go_before_the_next_report_and_a_new_message_id() -> None:
    sink = Sink()
    async with ProgressReporter(sink, "aex-1", "p", flush_interval=10) as progress:
        progress.delta("m1", "Hel")
        progress.delta("m1", "lo")
        progress.delta("m2", "Bye")
        progress.send(_message("Hello"))
    assert sink.items == [
        ("delta", "m1", "Hello"),
        ("delta", "m2", "Bye"),
        ("message", "m1", "Hello"),
    ]


async def test_report_ids_are_numbered_in_order_under_the_prefix() -> None:
    sink = Sink(delay=0.01)
    async with ProgressReporter(sink, "aex-1", "run/2/1") as progress:
        for i in range(3):
            progress.send(_message(str(i)))
            await progress.flush()
        assert progress.next_id() == "run/2/1/4"
    assert [rid for rid, _ in sink.reports] == ["run/2/1/1", "run/2/1/2", "run/2/1/3"]
    assert [u.messages[0].content for u in sink.updates] == ["0", "1", "2"]


async def test_reports_queued_while_one_is_in_flight_go_as_one_in_order() -> None:
    sink = Sink(delay=0.05)
    async with ProgressReporter(sink, "aex-1", "run/2/1") as progress:
        progress.send(common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_RUNNING))
        await asyncio.sleep(0.01)  # RUNNING is in flight: the rest waits for it
        progress.delta("m1", "Hel")
        progress.send(common_pb2.ExecutionUpdate(usage=common_pb2.Usage(model_calls=1)))
        progress.delta("m1", "lo")
        progress.send(_message("Hello"))
        progress.send(common_pb2.ExecutionUpdate(output_text="Hello"))
        await progress.flush()
        assert progress.next_id() == "run/2/1/7"
    # The second report keeps the ID of the first it holds; the others go unused.
    assert [rid for rid, _ in sink.reports] == ["run/2/1/1", "run/2/1/2"]
    running, rest = sink.updates
    assert running == common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_RUNNING)
    assert (rest.delta_message_id, rest.content_delta) == ("m1", "Hello")
    assert [m.content for m in rest.messages] == ["Hello"]
    assert (rest.usage.model_calls, rest.output_text) == (1, "Hello")


async def test_a_phase_change_and_what_ranks_earlier_start_a_report_of_their_own() -> None:
    sink = Sink(delay=0.02)
    call = common_pb2.ToolCall(id="c1", status=common_pb2.TOOL_CALL_STATUS_RUNNING)
    done = common_pb2.ToolCall(id="c1", status=common_pb2.TOOL_CALL_STATUS_SUCCEEDED)
    async with ProgressReporter(sink, "aex-1", "p", flush_interval=10) as progress:
        progress.send(_message("first"))
        await asyncio.sleep(0.005)  # in flight
        progress.send(common_pb2.ExecutionUpdate(tool_calls=[call]))
        progress.send(common_pb2.ExecutionUpdate(tool_calls=[done]))
        progress.send(_message("the tool's result"))  # after its call: a report of its own
        progress.delta("m2", "next")  # after a message: too
        progress.send(common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_RUNNING))
    assert sink.items == [
        ("message", "m1", "first"),
        ("tool_call", "c1", "TOOL_CALL_STATUS_RUNNING"),
        ("tool_call", "c1", "TOOL_CALL_STATUS_SUCCEEDED"),
        ("message", "m1", "the tool's result"),
        ("delta", "m2", "next"),
    ]
    assert [len(u.tool_calls) for u in sink.updates] == [0, 2, 0, 0, 0]
    assert sink.updates[-1].phase == common_pb2.EXECUTION_PHASE_RUNNING
    assert not sink.updates[-1].content_delta


async def test_send_does_not_wait_but_flush_does() -> None:
    sink = Sink(delay=0.05)
    async with ProgressReporter(sink, "aex-1", "p") as progress:
        progress.send(_message("a"))
        progress.send(_message("b"))
        assert sink.reports == []
        await progress.flush()
        assert [m.content for u in sink.updates for m in u.messages] == ["a", "b"]


async def test_a_failed_report_surfaces_on_the_next_send_and_on_close() -> None:
    sink = Sink(fail_on=2)
    progress = ProgressReporter(sink, "aex-1", "p")
    await progress.__aenter__()
    progress.send(_message("a"))
    await progress.flush()
    progress.send(_message("b"))
    with pytest.raises(ExecutionClosedError):
        await progress.flush()
    assert progress.failed
    with pytest.raises(ExecutionClosedError):
        progress.send(_message("c"))
    with pytest.raises(ExecutionClosedError):
        await progress.close()


async def test_cancellation_drops_what_is_pending() -> None:
    sink = Sink(delay=0.5)
    with pytest.raises(asyncio.CancelledError):
        async with ProgressReporter(sink, "aex-1", "p") as progress:
            progress.send(_message("a"))
            progress.delta("m1", "partial")
            raise asyncio.CancelledError
    assert sink.reports == []


async def test_a_failing_run_still_sends_its_last_reports() -> None:
    sink = Sink()
    with pytest.raises(RuntimeError):
        async with ProgressReporter(sink, "aex-1", "p") as progress:
            progress.send(_message("the failed tool call"))
            raise RuntimeError("model failed")
    assert [u.messages[0].content for u in sink.updates] == ["the failed tool call"]


async def test_scrub_and_usage_totals() -> None:
    sink = Sink()
    async with ProgressReporter(sink, "aex-1", "p") as progress:
        progress.redactor = Redactor(["s3cret"])
        progress.send(_message("key s3cret"))
        progress.delta("m1", "s3cret")
        progress.send(
            common_pb2.ExecutionUpdate(
                tool_calls=[common_pb2.ToolCall(id="c", result="s3cret", error="s3cret!")]
            )
        )
        for tokens in (3, 4):
            progress.send(
                common_pb2.ExecutionUpdate(
                    usage=common_pb2.Usage(
                        input_tokens=tokens,
                        output_tokens=1,
                        total_tokens=tokens + 1,
                        cost=0.5,
                        currency="EUR",
                        model_calls=1,
                    )
                )
            )
        assert (progress.usage.input_tokens, progress.usage.model_calls) == (7, 2)
        assert progress.usage.cost == 1.0 and progress.usage.currency == "EUR"
    text = "".join(str(u) for u in sink.updates)
    assert "s3cret" not in text
    assert not sink.updates[0].HasField("error")  # scrubbing does not invent an error


SECRET = "sk-live-0123456789abcdef"
STREAMED = f"Your key is {SECRET}, keep {SECRET[:6]} safe."


def _splits() -> list[list[str]]:
    """The streamed text split at every boundary, in three pieces, and one char a delta."""
    cases = [[STREAMED[:i], STREAMED[i:]] for i in range(1, len(STREAMED))]
    start = STREAMED.index(SECRET)
    for i in range(start + 1, start + len(SECRET)):  # two cuts inside the secret
        cases += [[STREAMED[:i], STREAMED[i:j], STREAMED[j:]] for j in range(i + 1, len(STREAMED))]
    cases.append(list(STREAMED))
    return cases


def _count(sink: Sink) -> Callable[[], Awaitable[int]]:
    async def probe() -> int:
        return len(sink.updates)

    return probe


def _assert_no_secret(sink: Sink) -> None:
    for update in sink.updates:
        assert SECRET not in str(update)


@pytest.mark.parametrize("complete", [True, False], ids=["message-sent", "closed"])
async def test_a_secret_split_across_delta_batches_never_leaks(complete: bool) -> None:
    # Each send() between deltas is a batch boundary, as the flush timer is.
    scrubbed = STREAMED.replace(SECRET, REDACTED)
    for pieces in _splits():
        sink = Sink()
        async with ProgressReporter(sink, "aex-1", "p", flush_interval=10) as progress:
            progress.redactor = Redactor(["short", SECRET])
            for piece in pieces:
                progress.delta("m1", piece)
                progress.send(common_pb2.ExecutionUpdate(usage=common_pb2.Usage(model_calls=1)))
            if complete:
                progress.send(_message(STREAMED))
        _assert_no_secret(sink)
        deltas = [u.content_delta for u in sink.updates if u.content_delta]
        assert "".join(deltas) == scrubbed, pieces
        if complete:
            # The message comes last, after every delta of its stream.
            assert sink.items[-1] == ("message", "m1", scrubbed)
            assert {kind for kind, _, _ in sink.items[:-1]} == {"delta"}


async def test_held_back_text_waits_for_its_message_while_another_streams() -> None:
    sink = Sink()
    async with ProgressReporter(sink, "aex-1", "p", flush_interval=10) as progress:
        progress.redactor = Redactor([SECRET])
        progress.delta("m1", f"a {SECRET[:5]}")
        progress.delta("m2", "other")  # flushes m1 up to where a secret may begin
        progress.delta("m1", f"{SECRET[5:]} b")
        progress.send(_message("done"))
        assert progress.redactor.stream_cut("no secret here") == len("no secret here")
    _assert_no_secret(sink)
    by_id: dict[str, str] = {}
    for update in sink.updates:
        if update.content_delta:
            by_id[update.delta_message_id] = (
                by_id.get(update.delta_message_id, "") + update.content_delta
            )
    assert by_id == {"m1": f"a {REDACTED} b", "m2": "other"}


async def test_deltas_on_the_flush_timer_are_redacted_as_a_stream() -> None:
    sink = Sink()
    async with ProgressReporter(sink, "aex-1", "p", flush_interval=0.01) as progress:
        progress.redactor = Redactor([SECRET])
        half = len(STREAMED) // 2
        progress.delta("m1", STREAMED[:half])
        await assert_eventually(_count(sink), lambda n: n == 1, timeout=5, interval=0.01)
        progress.delta("m1", STREAMED[half:])
    _assert_no_secret(sink)
    assert "".join(u.content_delta for u in sink.updates) == STREAMED.replace(SECRET, REDACTED)


def _usage(tokens: int, currency: str = "") -> common_pb2.ExecutionUpdate:
    return common_pb2.ExecutionUpdate(
        usage=common_pb2.Usage(
            input_tokens=tokens, total_tokens=tokens, cost=0.25, model_calls=1, currency=currency
        )
    )


def _call(status: common_pb2.ToolCallStatus.ValueType) -> common_pb2.ExecutionUpdate:
    return common_pb2.ExecutionUpdate(tool_calls=[common_pb2.ToolCall(id="c1", status=status)])


_RUNNING = common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_RUNNING)
_TOOL_RUNNING = _call(common_pb2.TOOL_CALL_STATUS_RUNNING)
_TOOL_DONE = _call(common_pb2.TOOL_CALL_STATUS_SUCCEEDED)


def _delta(message_id: str, text: str) -> common_pb2.ExecutionUpdate:
    return common_pb2.ExecutionUpdate(content_delta=text, delta_message_id=message_id)


def _merged(updates: list[common_pb2.ExecutionUpdate]) -> agent_execution_pb2.AgentExecution:
    execution = agent_execution_pb2.AgentExecution(id="aex-1")
    execution.status.phase = common_pb2.EXECUTION_PHASE_PENDING
    for update in updates:
        merge_agent_update(execution, update, "runner")
    for transition in execution.status.transitions:
        transition.ClearField("time")
    execution.status.ClearField("start_time")
    return execution


def _coalesced(updates: list[common_pb2.ExecutionUpdate]) -> list[common_pb2.ExecutionUpdate]:
    # What the sender makes of ``updates`` all queued at once.
    reports: list[common_pb2.ExecutionUpdate] = []
    for update in updates:
        if not reports or not coalesce(reports[-1], update):
            reports.append(common_pb2.ExecutionUpdate())
            reports[-1].CopyFrom(update)
    return reports


@pytest.mark.parametrize(
    ("updates", "reports"),
    [
        # A no-op turn: RUNNING, the answer's delta, usage, the answer, the output.
        (
            [
                _RUNNING,
                _delta("m1", "Hello"),
                _usage(3),
                _message("Hello"),
                common_pb2.ExecutionUpdate(output_text="Hello"),
            ],
            1,
        ),
        ([_delta("m1", "Hel"), _delta("m1", "lo"), _message("Hello")], 1),
        ([_delta("m1", "a"), _delta("m2", "b")], 2),  # one delta per report
        ([_message("Hello"), _delta("m2", "b")], 2),  # a delta never goes before a message
        ([_usage(1, "EUR"), _usage(2), _usage(3, "USD")], 1),
        ([_TOOL_RUNNING, _TOOL_DONE, _message("result")], 2),  # a message before tool calls
        ([_message("ask"), _TOOL_RUNNING, _TOOL_DONE], 1),
        ([_message("a"), _RUNNING, _message("b")], 2),  # a phase change starts a report
        (
            [
                common_pb2.ExecutionUpdate(output_text="a"),
                common_pb2.ExecutionUpdate(output_text="b"),
            ],
            2,
        ),  # set twice: in order
        (
            [
                common_pb2.ExecutionUpdate(error=common_pb2.ExecutionError(message="x")),
                _message("after the error"),
            ],
            2,
        ),
    ],
)
def test_a_coalesced_report_leaves_the_status_where_its_reports_would(
    updates: list[common_pb2.ExecutionUpdate], reports: int
) -> None:
    coalesced = _coalesced(updates)
    assert len(coalesced) == reports
    assert _merged(coalesced) == _merged(updates)
    sequential, batched = Sink(), Sink()
    sequential.reports = [("", u) for u in updates]
    batched.reports = [("", u) for u in coalesced]
    assert batched.items == sequential.items  # what a watcher sees, in the same order


def test_coalesce_refuses_unknown_fields_and_big_reports() -> None:
    reason = common_pb2.ExecutionUpdate(reason="why")
    assert not coalesce(_message("a"), reason)
    big = _message("x" * COALESCE_MAX_BYTES)
    into = _message("a")
    assert not coalesce(into, big)
    assert into == _message("a")  # untouched when refused


async def test_the_turn_rides_on_the_last_report_even_when_it_is_absorbed() -> None:
    sink = Sink(delay=0.05)
    turn = runner_pb2.AppendThreadMessagesRequest(
        thread_id="thr-1",
        report_id="r/9",
        messages=[common_pb2.Message(role=common_pb2.MESSAGE_ROLE_USER, content="hi")],
    )
    async with ProgressReporter(sink, "aex-1", "r") as progress:
        progress.send(common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_RUNNING))
        await asyncio.sleep(0.01)  # RUNNING is in flight
        progress.send(common_pb2.ExecutionUpdate(messages=[common_pb2.Message(id="m1")]))
        # Absorbed into the report queued before it: the turn moves with it.
        progress.send(common_pb2.ExecutionUpdate(output_text="done"), thread_append=turn)
        await progress.flush()

    assert [report_id for report_id, _ in sink.reports] == ["r/1", "r/2"]
    assert sink.appends == {"r/1": None, "r/2": turn}
    assert [m.id for m in sink.updates[1].messages] == ["m1"]
    assert sink.updates[1].output_text == "done"
