"""Background heartbeats: none for a short body, then one per interval with fresh details."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio.testing import ActivityEnvironment

from runner.heartbeat import heartbeating
from tests.helpers import assert_eventually


async def test_a_body_shorter_than_the_interval_sends_no_heartbeat() -> None:
    beats: list[tuple[Any, ...]] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)

    async def short() -> None:
        async with heartbeating(timedelta(seconds=5)):
            await asyncio.sleep(0.01)

    await env.run(short)
    assert beats == []


async def test_a_longer_body_heartbeats_each_interval_with_its_details() -> None:
    beats: list[tuple[Any, ...]] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    checkpoint = {"sequence": 0}

    async def count() -> int:
        return len(beats)

    async def long() -> None:
        async with heartbeating(timedelta(milliseconds=20), lambda: (dict(checkpoint),)):
            await assert_eventually(count, lambda n: n >= 1, timeout=5, interval=0.005)
            checkpoint["sequence"] = 1
            seen = len(beats)
            await assert_eventually(count, lambda n: n > seen, timeout=5, interval=0.005)

    await env.run(long)
    assert beats[0] == ({"sequence": 0},)
    assert beats[-1] == ({"sequence": 1},)
