"""The progress outbox: order, batched deltas, stable report IDs, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from polyfleet.redaction import REDACTED, Redactor
from polyfleet.v1 import common_pb2
from runner.errors import ExecutionClosedError
from runner.progress import ProgressReporter
from tests.helpers import assert_eventually


class Sink:
    """Records reports; optionally slow or failing."""

    def __init__(self, delay: float = 0.0, fail_on: int = 0) -> None:
        self.reports: list[tuple[str, common_pb2.ExecutionUpdate]] = []
        self.delay = delay
        self.fail_on = fail_on

    async def report(
        self, execution_id: str, report_id: str, update: common_pb2.ExecutionUpdate
    ) -> None:
        assert execution_id == "aex-1"
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_on and len(self.reports) + 1 == self.fail_on:
            raise ExecutionClosedError("execution aex-1 is already CANCELLED")
        self.reports.append((report_id, update))

    @property
    def updates(self) -> list[common_pb2.ExecutionUpdate]:
        return [u for _, u in self.reports]


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
    assert [(u.delta_message_id, u.content_delta) for u in sink.updates[:2]] == [
        ("m1", "Hello"),
        ("m2", "Bye"),
    ]
    assert sink.updates[2].messages[0].content == "Hello"


async def test_report_ids_are_numbered_in_order_under_the_prefix() -> None:
    sink = Sink(delay=0.01)
    async with ProgressReporter(sink, "aex-1", "run/2/1") as progress:
        for i in range(3):
            progress.send(_message(str(i)))
        assert progress.next_id() == "run/2/1/4"
    assert [rid for rid, _ in sink.reports] == ["run/2/1/1", "run/2/1/2", "run/2/1/3"]
    assert [u.messages[0].content for u in sink.updates] == ["0", "1", "2"]


async def test_send_does_not_wait_but_flush_does() -> None:
    sink = Sink(delay=0.05)
    async with ProgressReporter(sink, "aex-1", "p") as progress:
        progress.send(_message("a"))
        progress.send(_message("b"))
        assert sink.reports == []
        await progress.flush()
        assert len(sink.reports) == 2


async def test_a_failed_report_surfaces_on_the_next_send_and_on_close() -> None:
    sink = Sink(fail_on=2)
    progress = ProgressReporter(sink, "aex-1", "p")
    await progress.__aenter__()
    progress.send(_message("a"))
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
            assert sink.updates[-1].messages[0].content == scrubbed
            assert not sink.updates[-2].messages  # the last delta came before the message


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
