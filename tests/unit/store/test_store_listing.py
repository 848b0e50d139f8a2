"""Secondary indexes: filters, ordering and pagination of List."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from polyfleet.v1 import agent_execution_pb2, agent_pb2, common_pb2, workflow_execution_pb2
from store import InvalidArgumentError, InvalidPageTokenError, Store

PENDING = common_pb2.EXECUTION_PHASE_PENDING
RUNNING = common_pb2.EXECUTION_PHASE_RUNNING
COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED
AgentExecution = agent_execution_pb2.AgentExecution


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as opened:
        yield opened


def execution(
    agent: str, session_id: str = "", phase: common_pb2.ExecutionPhase.ValueType = PENDING
) -> AgentExecution:
    return AgentExecution(
        agent=agent,
        session_id=session_id,
        status=agent_execution_pb2.AgentExecutionStatus(phase=phase),
    )


async def list_all(db: Store, filters: dict[str, str | int], page_size: int) -> list[str]:
    ids: list[str] = []
    token = ""
    while True:
        page, token = await db.agent_executions.list(
            filters=filters, page_size=page_size, page_token=token
        )
        assert len(page) <= page_size
        ids.extend(e.id for e in page)
        if not token:
            return ids


async def test_list_is_newest_first_and_paginates(db: Store) -> None:
    created = [await db.agent_executions.create(execution("a")) for _ in range(7)]
    newest_first = [e.id for e in reversed(created)]

    first, token = await db.agent_executions.list(page_size=3)

    assert [e.id for e in first] == newest_first[:3]
    assert token
    assert await list_all(db, {}, 3) == newest_first
    assert await list_all(db, {}, 7) == newest_first
    assert await list_all(db, {}, 100) == newest_first


async def test_last_page_has_no_token(db: Store) -> None:
    for _ in range(4):
        await db.agent_executions.create(execution("a"))

    _, token = await db.agent_executions.list(page_size=2)
    last, end = await db.agent_executions.list(page_size=2, page_token=token)

    assert len(last) == 2
    assert end == ""


async def test_filters_by_each_index(db: Store) -> None:
    made = [
        await db.agent_executions.create(execution(f"a{i % 3}", f"s{i % 2}", PENDING))
        for i in range(12)
    ]

    def expected(keep: dict[str, str]) -> list[str]:
        return [
            e.id
            for e in reversed(made)
            if all(getattr(e, field) == value for field, value in keep.items())
        ]

    assert await list_all(db, {"agent": "a1"}, 2) == expected({"agent": "a1"})
    assert await list_all(db, {"session_id": "s0"}, 2) == expected({"session_id": "s0"})
    assert await list_all(db, {"phase": int(PENDING)}, 5) == expected({})
    assert await list_all(db, {"phase": int(RUNNING)}, 5) == []
    # A second filter is checked on the executions the first index yields.
    both = {"agent": "a2", "session_id": "s1"}
    assert await list_all(db, dict(both), 1) == expected(both)
    assert await list_all(db, {"agent": "a2", "phase": int(PENDING)}, 2) == expected(
        {"agent": "a2"}
    )
    # Empty values are unset filters.
    assert await list_all(db, {"agent": "", "phase": 0}, 50) == expected({})


async def test_phase_index_follows_updates(db: Store) -> None:
    running = await db.agent_executions.create(execution("a"))
    await db.agent_executions.create(execution("a"))

    def start(e: AgentExecution) -> None:
        e.status.phase = RUNNING

    await db.agent_executions.update(running.id, start)

    assert await list_all(db, {"phase": int(RUNNING)}, 10) == [running.id]
    assert running.id not in await list_all(db, {"phase": int(PENDING)}, 10)
    assert len(await list_all(db, {}, 10)) == 2


async def test_inserts_between_pages_do_not_shift_later_pages(db: Store) -> None:
    before = [await db.agent_executions.create(execution("a")) for _ in range(10)]
    seen: list[str] = []
    token = ""
    while True:
        page, token = await db.agent_executions.list(
            filters={"agent": "a"}, page_size=3, page_token=token
        )
        seen.extend(e.id for e in page)
        # Newer items are inserted while the client pages.
        await db.agent_executions.create(execution("a"))
        await db.agent_executions.create(execution("b"))
        if not token:
            break

    assert seen == [e.id for e in reversed(before)]


async def test_page_size_defaults_and_cap(db: Store) -> None:
    for _ in range(1003):
        await db.workflow_executions.create(workflow_execution_pb2.WorkflowExecution(workflow="w"))

    default_page, _ = await db.workflow_executions.list(page_size=0)
    negative_page, _ = await db.workflow_executions.list(page_size=-5)
    capped_page, token = await db.workflow_executions.list(page_size=5000)
    rest, end = await db.workflow_executions.list(page_size=5000, page_token=token)

    assert len(default_page) == len(negative_page) == 50
    assert len(capped_page) == 1000
    assert (len(rest), end) == (3, "")


@pytest.mark.parametrize(
    "token",
    [
        "%%%not-base64%%%",
        "é",
        base64.urlsafe_b64encode(b"no separator").decode(),
        base64.urlsafe_b64encode(b"agents.by_time\x00" + b"k" * 20).decode(),
    ],
)
async def test_invalid_page_token(db: Store, token: str) -> None:
    await db.agent_executions.create(execution("a"))

    with pytest.raises(InvalidPageTokenError) as caught:
        await db.agent_executions.list(page_token=token)

    assert isinstance(caught.value, InvalidArgumentError)
    assert caught.value.field == "page_token"


async def test_token_is_bound_to_its_filters(db: Store) -> None:
    for _ in range(3):
        await db.agent_executions.create(execution("a", "s"))
    _, by_agent = await db.agent_executions.list(filters={"agent": "a"}, page_size=1)
    _, unfiltered = await db.agent_executions.list(page_size=1)

    with pytest.raises(InvalidPageTokenError):
        await db.agent_executions.list(filters={"agent": "b"}, page_token=by_agent)
    with pytest.raises(InvalidPageTokenError):
        await db.agent_executions.list(filters={"session_id": "s"}, page_token=by_agent)
    with pytest.raises(InvalidPageTokenError):
        await db.agent_executions.list(page_token=by_agent)
    with pytest.raises(InvalidPageTokenError):
        await db.agent_executions.list(filters={"agent": "a"}, page_token=unfiltered)


async def test_unknown_filter(db: Store) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await db.agent_executions.list(filters={"workflow": "w"})

    assert caught.value.field == "filters"


async def test_workflow_executions_filter_by_workflow(db: Store) -> None:
    made = [
        await db.workflow_executions.create(
            workflow_execution_pb2.WorkflowExecution(workflow=f"w{i % 2}")
        )
        for i in range(4)
    ]

    page, _ = await db.workflow_executions.list(filters={"workflow": "w0"})

    assert [e.id for e in page] == [made[2].id, made[0].id]
    assert all(e.id.startswith("wex-") for e in made)


async def test_agents_list_paginates(db: Store) -> None:
    for i in range(5):
        await db.agents.create(agent_pb2.Agent(name=f"agent-{i}"))

    first, token = await db.agents.list(page_size=2)
    second, token2 = await db.agents.list(page_size=2, page_token=token)
    third, end = await db.agents.list(page_size=2, page_token=token2)

    names = [a.name for a in first + second + third]
    assert names == [f"agent-{i}" for i in reversed(range(5))]
    assert end == ""


async def test_count_reads_the_phase_index_and_follows_updates(db: Store) -> None:
    for phase in (PENDING, PENDING, RUNNING, RUNNING, RUNNING):
        await db.agent_executions.create(execution("a", phase=phase))
    running, _ = await db.agent_executions.list(filters={"phase": RUNNING})

    def complete(e: AgentExecution) -> None:
        e.status.phase = COMPLETED

    await db.agent_executions.update(running[0].id, complete)

    assert await db.agent_executions.count("phase", int(PENDING)) == 2
    assert await db.agent_executions.count("phase", int(RUNNING)) == 2
    assert await db.agent_executions.count("phase", int(COMPLETED)) == 1
    assert await db.workflow_executions.count("phase", int(RUNNING)) == 0
    with pytest.raises(InvalidArgumentError, match="field"):
        await db.agent_executions.count("labels", "x")
