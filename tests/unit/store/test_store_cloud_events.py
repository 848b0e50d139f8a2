"""The CloudEvents stream: sequences, deduplication by (source, id), filters, retention."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from polyfleet.v1 import event_pb2
from store import EventRecord, InvalidArgumentError, Store


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as opened:
        yield opened


def record(event_id: str, type: str = "t", source: str = "/s", execution: str = "") -> EventRecord:
    return EventRecord(
        event=event_pb2.CloudEvent(id=event_id, source=source, type=type, specversion="1.0"),
        execution_id=execution,
    )


async def test_append_assigns_sequences_and_receive_times(db: Store) -> None:
    assert await db.events.last_sequence() == 0
    first, published = await db.events.append(record("a"))
    second, _ = await db.events.append(record("b"))
    assert published
    assert (first.sequence, second.sequence) == (1, 2)
    assert second.receive_time.ToNanoseconds() > first.receive_time.ToNanoseconds()
    assert await db.events.last_sequence() == 2
    events, last = await db.events.read(0, 10)
    assert [e.event.id for e in events] == ["a", "b"] and last == 2
    events, last = await db.events.read(1, 10)
    assert [e.event.id for e in events] == ["b"] and last == 2
    assert await db.events.read(2, 10) == ([], 2)


async def test_same_source_and_id_is_stored_once(db: Store) -> None:
    first, _ = await db.events.append(record("a", type="one"))
    again, published = await db.events.append(record("a", type="two"))
    assert not published
    assert again == first, "the stored record, not the new one"
    other, published = await db.events.append(record("a", source="/other"))
    assert published and other.sequence == 2, "ids are unique per source"


async def test_filters_and_receive_time_cut(db: Store) -> None:
    await db.events.append(record("a", type="x"))
    cut, _ = await db.events.append(record("b", type="y", execution="wex-1"))
    await db.events.append(record("c", type="x", source="/o"))
    events, last = await db.events.read(0, 10, type="x")
    assert [e.event.id for e in events] == ["a", "c"] and last == 3
    events, _ = await db.events.read(0, 10, type="x", source="/o")
    assert [e.event.id for e in events] == ["c"]
    events, _ = await db.events.read(0, 10, execution_id="wex-1")
    assert [e.event.id for e in events] == ["b"]
    events, _ = await db.events.read(0, 10, received_from_ns=cut.receive_time.ToNanoseconds())
    assert [e.event.id for e in events] == ["b", "c"]
    events, last = await db.events.read(0, 1)
    assert [e.event.id for e in events] == ["a"] and last == 1, "paged by limit"


async def test_retention_keeps_the_newest_events_and_their_identities(db: Store) -> None:
    db.events.retention = 2
    for name in "abcd":
        await db.events.append(record(name))
    events, _ = await db.events.read(0, 10)
    assert [(e.sequence, e.event.id) for e in events] == [(3, "c"), (4, "d")]
    # An evicted identity is forgotten (the deduplication window is the retention) ...
    again, published = await db.events.append(record("a"))
    assert published and again.sequence == 5
    # ... a kept one is not.
    _, published = await db.events.append(record("d"))
    assert not published


async def test_overlong_identity_names_the_field(db: Store) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await db.events.append(record("x" * 500))
    assert caught.value.field == "event.source"


async def test_events_survive_reopen(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store") as opened:
        await opened.events.append(record("a"))
    with Store.open(tmp_path / "store") as reopened:
        assert await reopened.events.last_sequence() == 1
        _, published = await reopened.events.append(record("a"))
        assert not published
