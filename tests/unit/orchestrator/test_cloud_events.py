"""CloudEvents in the orchestrator: validation naming the field, emit ids, waits, subscribe."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.cloud_events import CloudEvents, emitted_event_id, execution_source
from orchestrator.errors import InvalidArgumentError
from polyfleet.v1 import event_pb2
from store import Store

CloudEvent = event_pb2.CloudEvent


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as opened:
        yield opened


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (CloudEvent(source="/s", type="t"), "event.id"),
        (CloudEvent(id="1", type="t"), "event.source"),
        (CloudEvent(id="1", source="/s"), "event.type"),
        (CloudEvent(id="1", source="/s", type="t", specversion="0.3"), "event.specversion"),
        (
            CloudEvent(id="1", source="/s", type="t", extensions={"Bad": "x"}),
            "event.extensions[Bad]",
        ),
        (
            CloudEvent(id="1", source="/s", type="t", extensions={"data": "x"}),
            "event.extensions[data]",
        ),
        (CloudEvent(id="1", source="/s", type="t" * 300), "event.type"),
    ],
)
async def test_publish_names_the_invalid_attribute(
    db: Store, event: CloudEvent, field: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await CloudEvents(db).publish(event)
    assert caught.value.field == field
    assert await db.events.last_sequence() == 0


async def test_publish_fills_defaults_and_deduplicates(db: Store) -> None:
    events = CloudEvents(db)
    record, published = await events.publish(CloudEvent(id="1", source="/s", type="t"))
    assert published and record.sequence == 1
    assert record.event.specversion == "1.0"
    assert record.event.datacontenttype == "application/json"
    assert record.event.HasField("time")
    again, published = await events.publish(CloudEvent(id="1", source="/s", type="other"))
    assert not published and again == record


async def test_emit_derives_id_and_source_once_per_task_attempt(db: Store) -> None:
    events = CloudEvents(db)
    request = event_pb2.EmitEventRequest(
        execution_id="wex-1", task_id="/do/0/e", attempt=1, event=CloudEvent(type="t")
    )
    first, published = await events.emit(request)
    assert published
    assert first.event.source == execution_source("wex-1")
    assert first.event.id == emitted_event_id("wex-1", "/do/0/e", 1)
    assert (first.execution_id, first.task_id) == ("wex-1", "/do/0/e")
    _, published = await events.emit(request)  # another activity attempt
    assert not published
    request.attempt = 2  # a `try` retry
    second, published = await events.emit(request)
    assert published and second.event.id != first.event.id


async def test_receive_waits_for_a_new_event_and_honours_the_cut(db: Store) -> None:
    events = CloudEvents(db)
    old, _ = await events.publish(CloudEvent(id="old", source="/s", type="t"))
    cut = old.receive_time.ToNanoseconds() + 1
    assert await events.receive(0, 10, 0.0, received_from_ns=cut) == ([], 1)
    waiting = asyncio.create_task(events.receive(1, 10, 30.0, received_from_ns=cut))
    await asyncio.sleep(0)
    assert not waiting.done()
    await events.publish(CloudEvent(id="new", source="/s", type="t"))
    found, last = await asyncio.wait_for(waiting, 10)
    assert [r.event.id for r in found] == ["new"] and last == 2


async def test_subscribe_yields_every_new_event(db: Store) -> None:
    events = CloudEvents(db)
    await events.publish(CloudEvent(id="before", source="/s", type="t"))
    start = await db.events.last_sequence()
    stream = events.subscribe(start)
    nxt = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    await events.publish(CloudEvent(id="a", source="/s", type="t"))
    await events.publish(CloudEvent(id="b", source="/s", type="t"))
    first = await asyncio.wait_for(nxt, 10)
    second = await asyncio.wait_for(anext(stream), 10)
    assert [first.event.id, second.event.id] == ["a", "b"]
    await stream.aclose()  # type: ignore[attr-defined]
