"""Safe retries with request_id, and per-session multitask strategies."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import grpc
import pytest
from temporalio.client import Client

from polyfleet.error_details import EXECUTION_ID, error_info
from polyfleet.v1 import agent_execution_pb2, common_pb2
from tests.conftest import Fleet, start_fleet, stop_fleet
from tests.integration.lifecycle.conftest import (
    apply,
    create,
    get,
    request,
    slow_agent,
    wait_phase,
)

P = common_pb2


async def test_fifty_concurrent_creates_with_one_request_id_make_one_execution(
    fleet: Fleet,
) -> None:
    await apply(fleet, slow_agent(seconds=0.2))
    same = request("slow", "once please", request_id="order-42")
    results = await asyncio.gather(*(create(fleet, same) for _ in range(50)))
    assert len({r.id for r in results}) == 1
    listed = await fleet.executions.ListAgentExecutions(
        agent_execution_pb2.ListAgentExecutionsRequest(agent="slow")
    )
    assert [e.id for e in listed.executions] == [results[0].id]
    done = await wait_phase(fleet, results[0].id)
    assert done.status.phase == P.EXECUTION_PHASE_COMPLETED
    # The same request later still answers with the original; another body is refused.
    again = await create(fleet, same)
    assert again.id == results[0].id
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await create(fleet, request("slow", "something else", request_id="order-42"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in (raised.value.details() or "")
    assert results[0].id in (raised.value.details() or "")
    # Without a request_id every Create is new.
    a = await create(fleet, request("slow", "x"))
    b = await create(fleet, request("slow", "x"))
    assert a.id != b.id


async def test_request_id_survives_an_orchestrator_restart(
    temporal_client: Client, tmp_path: Path
) -> None:
    first = await start_fleet(temporal_client, tmp_path)
    try:
        await apply(first, slow_agent(seconds=0.1))
        original = await create(first, request("slow", request_id="retry-me"))
    finally:
        await stop_fleet(first)
    second = await start_fleet(temporal_client, tmp_path, queues=first.queues)
    try:
        again = await create(second, request("slow", request_id="retry-me"))
        assert again.id == original.id
    finally:
        await stop_fleet(second)


async def test_reject_names_the_execution_in_flight(fleet: Fleet) -> None:
    await apply(fleet, slow_agent(seconds=2))
    running = await create(fleet, request("slow"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await create(
            fleet,
            request("slow", session_id=running.session_id, strategy=P.MULTITASK_STRATEGY_REJECT),
        )
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert running.id in (raised.value.details() or "")
    info = error_info(raised.value)
    assert info is not None and info.reason == "SESSION_BUSY"
    assert info.metadata[EXECUTION_ID] == running.id


async def test_enqueue_runs_one_after_another_in_creation_order(fleet: Fleet) -> None:
    await apply(fleet, slow_agent(seconds=1))
    a = await create(fleet, request("slow", "first"))
    b = await create(fleet, request("slow", "second", session_id=a.session_id))
    c = await create(fleet, request("slow", "third", session_id=a.session_id))
    assert b.status.queued_behind == a.id
    assert c.status.queued_behind == b.id
    done = [await wait_phase(fleet, e.id) for e in (a, b, c)]
    assert [e.status.phase for e in done] == [P.EXECUTION_PHASE_COMPLETED] * 3
    for earlier, later in itertools.pairwise(done):
        assert later.status.start_time.ToNanoseconds() >= earlier.status.end_time.ToNanoseconds()


async def test_interrupt_cancels_the_running_one_then_runs(fleet: Fleet) -> None:
    await apply(fleet, slow_agent(seconds=5))
    a = await create(fleet, request("slow", "long"))
    await wait_phase(fleet, a.id, (P.EXECUTION_PHASE_RUNNING,), timeout=20)
    b = await create(
        fleet,
        request("slow", "now", session_id=a.session_id, strategy=P.MULTITASK_STRATEGY_INTERRUPT),
    )
    interrupted = await wait_phase(fleet, a.id, timeout=20)
    assert interrupted.status.phase == P.EXECUTION_PHASE_CANCELLED
    finished = await wait_phase(fleet, b.id, timeout=30)
    assert finished.status.phase == P.EXECUTION_PHASE_COMPLETED
    assert finished.status.start_time.ToNanoseconds() >= interrupted.status.end_time.ToNanoseconds()


async def test_enqueued_executions_survive_a_restart_in_order(
    temporal_client: Client, tmp_path: Path
) -> None:
    # No runner before the restart: all three are still queued when the orchestrator stops
    # (a runner stopped with `a` in flight would fail it past its drain grace, which is
    # another test's subject).
    first = await start_fleet(temporal_client, tmp_path, with_runner=False)
    try:
        await apply(first, slow_agent(seconds=1))
        a = await create(first, request("slow", "a"))
        b = await create(first, request("slow", "b", session_id=a.session_id))
        c = await create(first, request("slow", "c", session_id=a.session_id))
    finally:
        await stop_fleet(first)
    second = await start_fleet(temporal_client, tmp_path, queues=first.queues)
    try:
        done = [await wait_phase(second, e.id, timeout=90) for e in (a, b, c)]
        assert [e.status.phase for e in done] == [P.EXECUTION_PHASE_COMPLETED] * 3
        assert done[1].status.start_time.ToNanoseconds() >= done[0].status.end_time.ToNanoseconds()
        assert done[2].status.start_time.ToNanoseconds() >= done[1].status.end_time.ToNanoseconds()
        transitions = [(t.to_phase, t.source) for t in done[2].status.transitions]
        assert transitions[-1] == (P.EXECUTION_PHASE_COMPLETED, "orchestrator")
    finally:
        await stop_fleet(second)


async def test_transitions_are_recorded_with_times_and_reasons(fleet: Fleet) -> None:
    await apply(fleet, slow_agent(seconds=0.1))
    done = await wait_phase(fleet, (await create(fleet, request("slow"))).id)
    steps = [(t.from_phase, t.to_phase, t.source) for t in done.status.transitions]
    assert steps == [
        (P.EXECUTION_PHASE_PENDING, P.EXECUTION_PHASE_RUNNING, "runner"),
        (P.EXECUTION_PHASE_RUNNING, P.EXECUTION_PHASE_COMPLETED, "orchestrator"),
    ]
    assert all(t.HasField("time") for t in done.status.transitions)
    assert (await get(fleet, done.id)).status.phase == P.EXECUTION_PHASE_COMPLETED
