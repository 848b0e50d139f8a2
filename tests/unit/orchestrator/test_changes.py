"""ExecutionChanges: numbering, the ring, resume, RESET, slow followers; and its publishers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import cast

import pytest
import pytest_asyncio
from temporalio.client import Client

import store
from orchestrator.agent_executions import AgentExecutions
from orchestrator.changes import DEFAULT_CAPACITY, ExecutionChanges
from orchestrator.errors import InvalidArgumentError, WorkflowStartError
from orchestrator.events import EventHub
from polyfleet.config import ExecutionSettings, TaskQueueSettings
from polyfleet.v1 import (
    agent_execution_pb2,
    common_pb2,
    fleet_pb2,
    workflow_execution_pb2,
)
from tests.unit.orchestrator.conftest import RefusingTemporal

CREATED = fleet_pb2.EXECUTION_CHANGE_TYPE_CREATED
PHASE_CHANGED = fleet_pb2.EXECUTION_CHANGE_TYPE_PHASE_CHANGED
RESET = fleet_pb2.EXECUTION_CHANGE_TYPE_RESET
RUNNING = common_pb2.EXECUTION_PHASE_RUNNING
START_MS = 1_780_000_000_000


def _agent(
    number: int, phase: common_pb2.ExecutionPhase.ValueType = common_pb2.EXECUTION_PHASE_PENDING
) -> agent_execution_pb2.AgentExecution:
    execution = agent_execution_pb2.AgentExecution(id=f"aex-{number}", agent="assistant")
    execution.status.phase = phase
    execution.status.messages.add(id="m1", role=common_pb2.MESSAGE_ROLE_USER, content="secret")
    execution.status.output_text = "the answer"
    return execution


def _publish(feed: ExecutionChanges, count: int) -> list[int]:
    """Publish ``count`` changes; their sequences."""
    return [feed.publish(CREATED, _agent(n)).sequence for n in range(count)]


class Follower:
    """Reads a follow() stream in the background, as an RPC would."""

    def __init__(self, changes: AsyncIterator[fleet_pb2.ExecutionChange]) -> None:
        self._received: asyncio.Queue[fleet_pb2.ExecutionChange] = asyncio.Queue()
        self.task = asyncio.create_task(self._pump(changes))

    async def _pump(self, changes: AsyncIterator[fleet_pb2.ExecutionChange]) -> None:
        async for change in changes:
            self._received.put_nowait(change)

    async def take(self, count: int) -> list[fleet_pb2.ExecutionChange]:
        """The next ``count`` changes, failing if they do not come within seconds."""
        return [await asyncio.wait_for(self._received.get(), 5) for _ in range(count)]

    async def silent(self) -> bool:
        """Whether nothing more arrived once the loop has run everything that was ready."""
        for _ in range(20):
            await asyncio.sleep(0)
        return self._received.empty()


@pytest_asyncio.fixture
async def follow() -> AsyncIterator[Callable[[ExecutionChanges, int], Follower]]:
    """Start followers of a feed; they are cancelled after the test."""
    started: list[Follower] = []

    def start(feed: ExecutionChanges, after_sequence: int) -> Follower:
        follower = Follower(feed.follow(after_sequence))
        started.append(follower)
        return follower

    yield start
    for follower in started:
        follower.task.cancel()
    await asyncio.gather(*(f.task for f in started), return_exceptions=True)


Follow = Callable[[ExecutionChanges, int], Follower]


def test_sequences_increase_from_the_start_time() -> None:
    feed = ExecutionChanges(start_ms=START_MS)
    sequences = _publish(feed, 3)
    base = START_MS * 1000
    assert sequences == [base + 1, base + 2, base + 3]
    assert feed.last_sequence == base + 3


def test_a_change_carries_the_basic_view_of_its_kind() -> None:
    feed = ExecutionChanges()
    agent = _agent(1, RUNNING)
    change = feed.publish(PHASE_CHANGED, agent)
    assert change.type == PHASE_CHANGED
    assert change.WhichOneof("execution") == "agent_execution"
    carried = change.agent_execution
    assert (carried.id, carried.status.phase) == ("aex-1", RUNNING)
    # Trimmed like List's BASIC: the message keeps its ID, loses its content.
    assert [m.id for m in carried.status.messages] == ["m1"]
    assert carried.status.messages[0].content == ""
    assert carried.status.output_text == ""
    # The publisher's execution is left as it was.
    assert agent.status.messages[0].content == "secret"
    workflow = workflow_execution_pb2.WorkflowExecution(id="wex-1", document="do: []")
    workflow.status.tasks.add(name="t").output.string_value = "big"
    change = feed.publish(CREATED, workflow)
    assert change.WhichOneof("execution") == "workflow_execution"
    assert change.workflow_execution.document == ""
    assert not change.workflow_execution.status.tasks[0].HasField("output")


async def test_a_follower_from_zero_gets_only_live_changes(follow: Follow) -> None:
    feed = ExecutionChanges()
    _publish(feed, 2)
    follower = follow(feed, 0)
    assert await follower.silent()
    live = _publish(feed, 2)
    assert [c.sequence for c in await follower.take(2)] == live


async def test_resuming_after_a_held_sequence_gets_exactly_the_rest(follow: Follow) -> None:
    feed = ExecutionChanges(capacity=10)
    sequences = _publish(feed, 8)
    follower = follow(feed, sequences[2])
    held = await follower.take(5)
    assert [c.sequence for c in held] == sequences[3:]
    assert [c.agent_execution.id for c in held] == ["aex-3", "aex-4", "aex-5", "aex-6", "aex-7"]
    assert await follower.silent()
    live = feed.publish(PHASE_CHANGED, _agent(3, RUNNING))
    assert await follower.take(1) == [live]
    # Resuming at the latest change waits for the next one.
    latest = follow(feed, live.sequence)
    assert await latest.silent()
    following = _publish(feed, 1)
    assert [c.sequence for c in await latest.take(1)] == following


async def test_resuming_after_what_the_ring_dropped_starts_with_a_reset(follow: Follow) -> None:
    feed = ExecutionChanges(capacity=4)
    sequences = _publish(feed, 10)
    # sequences[6] is the oldest change held: resuming after sequences[5] still works.
    kept = follow(feed, sequences[5])
    assert [c.sequence for c in await kept.take(4)] == sequences[6:]
    follower = follow(feed, sequences[4])
    (reset,) = await follower.take(1)
    assert reset.type == RESET
    assert reset.WhichOneof("execution") is None
    # The RESET is a position: what follows it is what comes next, live.
    assert reset.sequence == sequences[-1]
    assert await follower.silent()
    live = _publish(feed, 1)
    assert [c.sequence for c in await follower.take(1)] == live


async def test_a_sequence_of_a_previous_process_gets_a_reset(follow: Follow) -> None:
    before = ExecutionChanges(start_ms=START_MS)
    old = _publish(before, 5)
    # Restarted a second later: every new sequence is above every old one.
    after = ExecutionChanges(start_ms=START_MS + 1000)
    assert after.last_sequence > old[-1]
    new = _publish(after, 2)
    assert min(new) > max(old)
    follower = follow(after, old[-1])
    (reset,) = await follower.take(1)
    assert (reset.type, reset.sequence) == (RESET, new[-1])
    assert await follower.silent()
    # A sequence this process never issued (ahead of it) is no position either.
    ahead = follow(after, new[-1] + 1)
    assert [c.type for c in await ahead.take(1)] == [RESET]


async def test_a_reset_from_an_empty_feed_is_a_position_to_resume_from(follow: Follow) -> None:
    feed = ExecutionChanges(start_ms=START_MS)
    (reset,) = await follow(feed, 12345).take(1)
    assert reset.type == RESET
    resumed = follow(feed, reset.sequence)
    assert await resumed.silent()
    first = _publish(feed, 1)
    assert [c.sequence for c in await resumed.take(1)] == first


async def test_the_position_is_taken_when_the_stream_is_opened() -> None:
    feed = ExecutionChanges()
    changes = feed.follow(0)
    # Published before the first read, after the call: "from now on" includes it.
    published = _publish(feed, 1)
    assert (await anext(changes)).sequence == published[0]
    await changes.aclose()


async def test_a_slow_follower_neither_blocks_publishers_nor_misses_changes_silently() -> None:
    feed = ExecutionChanges(capacity=5)
    # Read by hand, one change at a time: the follower reads nothing while others publish.
    changes = feed.follow(0)
    # Publishing never waits for the follower: 12 changes while it reads none.
    sequences = _publish(feed, 12)
    # The ring dropped its next change: a RESET, at the latest change, not a gap.
    reset = await anext(changes)
    assert (reset.type, reset.sequence) == (RESET, sequences[-1])
    # A follower lapped while it is suspended between two changes is reset too.
    lapped = feed.follow(sequences[-3])
    assert (await anext(lapped)).sequence == sequences[-2]
    more = _publish(feed, 6)
    reset = await anext(lapped)
    assert (reset.type, reset.sequence) == (RESET, more[-1])
    # ... and goes on from there, without a gap.
    last = _publish(feed, 2)
    assert [(await anext(lapped)).sequence for _ in last] == last
    for stream in (changes, lapped):
        await stream.aclose()


async def test_every_follower_gets_the_same_changes_in_order(follow: Follow) -> None:
    feed = ExecutionChanges()
    start = _publish(feed, 1)[0]
    followers = [follow(feed, start) for _ in range(50)]
    sequences = _publish(feed, 30)
    for follower in followers:
        assert [c.sequence for c in await follower.take(30)] == sequences


async def test_the_default_ring_holds_ten_thousand_changes(follow: Follow) -> None:
    assert DEFAULT_CAPACITY == 10_000
    feed = ExecutionChanges()
    sequences = _publish(feed, DEFAULT_CAPACITY + 1)
    oldest = follow(feed, sequences[0])
    assert [c.sequence for c in await oldest.take(2)] == sequences[1:3]
    dropped = follow(feed, sequences[0] - 1)
    assert [c.type for c in await dropped.take(1)] == [RESET]


def test_a_negative_after_sequence_is_refused_at_once() -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        ExecutionChanges().follow(-1)
    assert raised.value.field == "after_sequence"


async def test_a_failed_start_is_created_then_failed_in_the_feed(
    db: store.Store, follow: Follow
) -> None:
    feed = ExecutionChanges()
    service = AgentExecutions(
        db,
        cast(Client, RefusingTemporal()),
        EventHub(),
        TaskQueueSettings(),
        ExecutionSettings(),
        changes=feed,
    )
    follower = follow(feed, 0)
    request = agent_execution_pb2.CreateAgentExecutionRequest(
        execution=agent_execution_pb2.AgentExecution(agent="assistant", message="hello")
    )
    with pytest.raises(WorkflowStartError) as raised:
        await service.create(request)
    created, failed = await follower.take(2)
    assert (created.type, created.agent_execution.status.phase) == (
        CREATED,
        common_pb2.EXECUTION_PHASE_PENDING,
    )
    assert (failed.type, failed.agent_execution.status.phase) == (
        PHASE_CHANGED,
        common_pb2.EXECUTION_PHASE_FAILED,
    )
    assert created.agent_execution.id == failed.agent_execution.id == raised.value.execution_id
    assert failed.sequence == created.sequence + 1
    # BASIC: the user message is listed without its content.
    assert [m.content for m in created.agent_execution.status.messages] == [""]
    assert await follower.silent()
