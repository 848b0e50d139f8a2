"""SessionLocks: creates and dequeues of one session one at a time, no lock kept after."""

from __future__ import annotations

import asyncio

from orchestrator.agent_executions import SessionLocks


async def test_one_session_is_serialized_and_others_are_not() -> None:
    locks = SessionLocks()
    inside: list[str] = []
    most = {"ses-a": 0, "ses-b": 0}
    release = asyncio.Event()

    async def hold(session_id: str) -> None:
        async with locks.hold(session_id):
            inside.append(session_id)
            most[session_id] = max(most[session_id], inside.count(session_id))
            await release.wait()
            inside.remove(session_id)

    tasks = [asyncio.create_task(hold(s)) for s in ("ses-a", "ses-a", "ses-b")]
    for _ in range(5):
        await asyncio.sleep(0)
    # One holder of ses-a waits for the other; ses-b does not wait for ses-a.
    assert sorted(inside) == ["ses-a", "ses-b"]
    assert len(locks) == 2
    release.set()
    await asyncio.gather(*tasks)
    assert most == {"ses-a": 1, "ses-b": 1}
    assert len(locks) == 0


async def test_a_lock_is_dropped_even_when_its_holder_fails() -> None:
    locks = SessionLocks()
    try:
        async with locks.hold("ses-a"):
            raise RuntimeError("create failed")
    except RuntimeError:
        pass
    assert len(locks) == 0
    async with locks.hold("ses-a"):
        assert len(locks) == 1
