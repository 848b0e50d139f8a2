"""Workflow checkpoints: put, get, overwrite, delete, sequences, large values and durability."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import Checkpoint, InvalidArgumentError, Store
from store.checkpoints import MAX_SEQUENCE

TINY_MAP = 64 * 1024


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as opened:
        yield opened


async def test_put_get_overwrite_delete(db: Store) -> None:
    assert await db.checkpoints.get("wex-1") is None

    await db.checkpoints.put("wex-1", 1, b"first")
    await db.checkpoints.put("wex-2", 7, b"other")
    assert await db.checkpoints.get("wex-1") == Checkpoint(1, b"first")

    await db.checkpoints.put("wex-1", 2, b"second, longer than the first")
    assert await db.checkpoints.get("wex-1") == Checkpoint(2, b"second, longer than the first")
    await db.checkpoints.put("wex-1", 3, b"")
    assert await db.checkpoints.get("wex-1") == Checkpoint(3, b""), (
        "an empty checkpoint is not a missing one"
    )

    await db.checkpoints.delete("wex-1")
    await db.checkpoints.delete("wex-1")  # deleting a missing checkpoint is a no-op
    assert await db.checkpoints.get("wex-1") is None
    assert await db.checkpoints.get("wex-2") == Checkpoint(7, b"other")


async def test_binary_values_are_kept_exactly(db: Store) -> None:
    data = bytes(range(256)) * 4 + b"\x00" * 10

    await db.checkpoints.put("wex-bin", 0, data)

    assert await db.checkpoints.get("wex-bin") == Checkpoint(0, data)


async def test_sequences_from_zero_to_the_maximum(db: Store) -> None:
    await db.checkpoints.put("wex-max", MAX_SEQUENCE, b"last")
    assert await db.checkpoints.get("wex-max") == Checkpoint(MAX_SEQUENCE, b"last")

    for bad in [-1, MAX_SEQUENCE + 1]:
        with pytest.raises(InvalidArgumentError) as caught:
            await db.checkpoints.put("wex-max", bad, b"data")
        assert caught.value.field == "sequence"
    assert await db.checkpoints.get("wex-max") == Checkpoint(MAX_SEQUENCE, b"last")


async def test_impossible_ids(db: Store) -> None:
    for bad in ["", "x" * 129, "a\x00b"]:
        with pytest.raises(InvalidArgumentError) as caught:
            await db.checkpoints.put(bad, 1, b"data")
        assert caught.value.field == "execution_id"
        assert await db.checkpoints.get(bad) is None
        await db.checkpoints.delete(bad)

    await db.checkpoints.put("x" * 128, 1, b"longest id")
    assert await db.checkpoints.get("x" * 128) == Checkpoint(1, b"longest id")


async def test_a_5_mb_checkpoint_grows_a_small_map(tmp_path: Path) -> None:
    big = os.urandom(5 * 1024 * 1024)
    path = tmp_path / "store"
    with Store.open(path, map_size=TINY_MAP) as db:
        await db.checkpoints.put("wex-big", 1, big)

        assert db.map_size >= len(big)
        assert await db.checkpoints.get("wex-big") == Checkpoint(1, big)
        replacement = big[::-1] + b"tail"
        await db.checkpoints.put("wex-big", 2, replacement)
        assert await db.checkpoints.get("wex-big") == Checkpoint(2, replacement)

    with Store.open(path, map_size=TINY_MAP) as reopened:
        assert await reopened.checkpoints.get("wex-big") == Checkpoint(2, replacement)
        await reopened.checkpoints.delete("wex-big")
        assert await reopened.checkpoints.get("wex-big") is None


async def test_concurrent_large_puts_and_reads(tmp_path: Path) -> None:
    values = {f"wex-{i}": bytes([i]) * (1024 * 1024 + i) for i in range(8)}
    with Store.open(tmp_path / "store", map_size=TINY_MAP) as db:
        await asyncio.gather(
            *(db.checkpoints.put(execution_id, 1, data) for execution_id, data in values.items()),
            *(db.checkpoints.get(execution_id) for execution_id in values),
        )

        stored = await asyncio.gather(*(db.checkpoints.get(i) for i in values))
        assert stored == [Checkpoint(1, data) for data in values.values()]
