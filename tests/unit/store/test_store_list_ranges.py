"""List by creation-time range and labels, and pagination while executions are inserted."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from polyfleet.v1 import agent_execution_pb2, common_pb2, workflow_execution_pb2
from store import InvalidPageTokenError, Store
from store._collection import Collection

if TYPE_CHECKING:
    from store._engine import Txn

PENDING = common_pb2.EXECUTION_PHASE_PENDING
RUNNING = common_pb2.EXECUTION_PHASE_RUNNING
AgentExecution = agent_execution_pb2.AgentExecution
WorkflowExecution = workflow_execution_pb2.WorkflowExecution


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as opened:
        yield opened


def execution(
    agent: str = "a",
    phase: common_pb2.ExecutionPhase.ValueType = PENDING,
    labels: Mapping[str, str] | None = None,
) -> AgentExecution:
    return AgentExecution(
        agent=agent,
        labels=dict(labels or {}),
        status=agent_execution_pb2.AgentExecutionStatus(phase=phase),
    )


def nanos(e: AgentExecution) -> int:
    return e.create_time.ToNanoseconds()


async def list_all(
    db: Store,
    page_size: int = 1000,
    *,
    filters: dict[str, str | int] | None = None,
    created_after: int = 0,
    created_before: int = 0,
    labels: dict[str, str] | None = None,
) -> list[str]:
    ids: list[str] = []
    token = ""
    while True:
        page, token = await db.agent_executions.list(
            filters=filters,
            page_size=page_size,
            page_token=token,
            created_after=created_after,
            created_before=created_before,
            labels=labels,
        )
        assert len(page) <= page_size
        ids.extend(e.id for e in page)
        if not token:
            return ids


@pytest.mark.parametrize(
    "filters", [{}, {"phase": int(RUNNING)}, {"agent": "a1"}], ids=["none", "phase", "agent"]
)
async def test_inserts_between_pages_never_skip_or_repeat_existing_executions(
    db: Store, filters: dict[str, str | int]
) -> None:
    phases = [PENDING, RUNNING]
    existing = [
        await db.agent_executions.create(execution(f"a{i % 3}", phases[i % 2])) for i in range(1000)
    ]
    expected = [
        e.id
        for e in reversed(existing)
        if all(
            (int(e.status.phase) if field == "phase" else getattr(e, field)) == value
            for field, value in filters.items()
        )
    ]
    assert len(expected) > 300

    seen: list[str] = []
    inserted = 0
    token = ""
    while True:
        page, token = await db.agent_executions.list(
            filters=filters, page_size=37, page_token=token
        )
        assert len(page) <= 37
        seen.extend(e.id for e in page)
        for _ in range(5):  # new executions, some matching the filters, arrive between pages
            await db.agent_executions.create(execution(f"a{inserted % 3}", phases[inserted % 2]))
            inserted += 1
        if not token:
            break

    assert len(seen) == len(set(seen)), "no execution is returned twice"
    old = set(expected)
    assert [i for i in seen if i in old] == expected, "every existing one once, newest first"
    assert inserted >= 5 * (len(expected) // 37)


async def created_series(db: Store, count: int) -> list[AgentExecution]:
    return [
        await db.agent_executions.create(
            execution(f"a{i % 2}", labels={"n": str(i), "parity": str(i % 2)})
        )
        for i in range(count)
    ]


def newest_first(made: list[AgentExecution], keep: range) -> list[str]:
    return [made[i].id for i in reversed(keep)]


async def test_created_after_is_inclusive_and_created_before_exclusive(db: Store) -> None:
    made = await created_series(db, 20)
    t = [nanos(e) for e in made]
    assert t == sorted(set(t)), "creation times are strictly increasing"

    assert await list_all(db, created_after=t[5], created_before=t[15]) == newest_first(
        made, range(5, 15)
    )
    assert await list_all(db, created_after=t[5] + 1, created_before=t[15] + 1) == newest_first(
        made, range(6, 16)
    )
    assert await list_all(db, created_after=t[12]) == newest_first(made, range(12, 20))
    assert await list_all(db, created_before=t[3]) == newest_first(made, range(3))
    assert await list_all(db, created_after=t[7], created_before=t[8]) == [made[7].id]


async def test_empty_and_unbounded_ranges(db: Store) -> None:
    made = await created_series(db, 6)
    t = [nanos(e) for e in made]
    everything = newest_first(made, range(6))

    assert await list_all(db, created_after=t[3], created_before=t[3]) == []
    assert await list_all(db, created_after=t[4], created_before=t[2]) == []
    assert await list_all(db, created_after=t[5] + 1) == []
    assert await list_all(db, created_before=t[0]) == []
    assert await list_all(db, created_before=-1) == [], "a negative time precedes everything"
    assert await list_all(db, created_after=-1) == everything
    assert await list_all(db, created_after=1, created_before=2**70) == everything
    assert await list_all(db, created_after=2**70) == []
    assert await list_all(db, created_after=0, created_before=0) == everything


async def test_ranges_with_an_index_filter_and_pagination(db: Store) -> None:
    made = await created_series(db, 30)
    t = [nanos(e) for e in made]
    in_range = range(4, 25)
    a0 = [made[i].id for i in reversed(in_range) if i % 2 == 0]

    def start(e: AgentExecution) -> None:
        e.status.phase = RUNNING

    for i in (6, 9, 10, 21, 26):
        await db.agent_executions.update(made[i].id, start)

    for page_size in (1, 3, 4, 100):
        assert (
            await list_all(
                db, page_size, filters={"agent": "a0"}, created_after=t[4], created_before=t[25]
            )
            == a0
        )
        assert await list_all(
            db, page_size, created_after=t[4], created_before=t[25]
        ) == newest_first(made, in_range)
        assert await list_all(
            db, page_size, filters={"phase": int(RUNNING)}, created_after=t[4], created_before=t[25]
        ) == [made[i].id for i in (21, 10, 9, 6)]
        # A further filter is checked on the executions of the ranged index scan.
        assert await list_all(
            db,
            page_size,
            filters={"agent": "a0", "phase": int(RUNNING)},
            created_after=t[4],
            created_before=t[25],
        ) == [made[i].id for i in (10, 6)]


async def test_a_ranged_token_continues_within_its_range(db: Store) -> None:
    made = await created_series(db, 12)
    t = [nanos(e) for e in made]

    first, token = await db.agent_executions.list(
        page_size=4, created_after=t[2], created_before=t[9]
    )
    # Newer executions (outside the range) arrive between the pages.
    for _ in range(3):
        await db.agent_executions.create(execution())
    second, end = await db.agent_executions.list(
        page_size=4, page_token=token, created_after=t[2], created_before=t[9]
    )

    assert [e.id for e in first] == newest_first(made, range(5, 9))
    assert [e.id for e in second] == newest_first(made, range(2, 5))
    assert end == ""


async def test_a_token_outside_the_range_is_rejected(db: Store) -> None:
    made = await created_series(db, 12)
    t = [nanos(e) for e in made]
    _, ranged = await db.agent_executions.list(page_size=2, created_before=t[10])
    _, unranged = await db.agent_executions.list(page_size=2)  # last key: made[10]

    with pytest.raises(InvalidPageTokenError):
        await db.agent_executions.list(page_token=ranged, created_after=t[9])
    with pytest.raises(InvalidPageTokenError):
        await db.agent_executions.list(page_token=unranged, created_before=t[10])
    with pytest.raises(InvalidPageTokenError):
        await db.agent_executions.list(
            filters={"agent": "a0"}, page_token=ranged, created_before=t[10]
        )
    # A token whose position lies in the range resumes there.
    rest, _ = await db.agent_executions.list(page_token=unranged, created_after=t[8])
    assert [e.id for e in rest] == [made[9].id, made[8].id]


async def test_a_ranged_scan_reads_only_its_range(
    db: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = await created_series(db, 100)
    t = [nanos(e) for e in made]
    loaded: list[str] = []
    load = Collection.load

    def counting_load(
        self: Collection[AgentExecution], txn: Txn, resource_id: str
    ) -> AgentExecution | None:
        loaded.append(resource_id)
        return load(self, txn, resource_id)

    monkeypatch.setattr(Collection, "load", counting_load)

    page, token = await db.agent_executions.list(created_after=t[40], created_before=t[50])
    assert ([e.id for e in page], token) == (newest_first(made, range(40, 50)), "")
    assert sorted(loaded) == sorted(e.id for e in page)

    loaded.clear()
    page, _ = await db.agent_executions.list(
        filters={"agent": "a1"}, created_after=t[40], created_before=t[50]
    )
    assert [e.id for e in page] == [made[i].id for i in range(49, 39, -2)]
    assert len(loaded) == 5


async def test_labels_must_all_match(db: Store) -> None:
    specs: list[dict[str, str]] = [
        {"env": "prod", "team": "x"},
        {"env": "dev", "team": "x"},
        {"env": "prod", "team": "y"},
        {"env": "prod"},
        {},
        {"env": "", "team": "x"},
    ]
    made = [await db.agent_executions.create(execution(labels=spec)) for spec in specs]
    ids = [e.id for e in made]

    def picked(*indexes: int) -> list[str]:
        return [ids[i] for i in sorted(indexes, reverse=True)]

    assert await list_all(db, labels={"env": "prod"}) == picked(0, 2, 3)
    assert await list_all(db, labels={"env": "prod", "team": "x"}) == picked(0)
    assert await list_all(db, labels={"team": "x"}) == picked(0, 1, 5)
    assert await list_all(db, labels={"env": "qa"}) == []
    assert await list_all(db, labels={"owner": "x"}) == []
    assert await list_all(db, labels={"env": ""}) == picked(5), "an empty value must be carried"
    assert await list_all(db, labels={}) == picked(*range(6))
    assert await list_all(db, labels=None) == picked(*range(6))


async def test_labels_with_filters_ranges_and_pagination(db: Store) -> None:
    made = await created_series(db, 40)
    t = [nanos(e) for e in made]

    for page_size in (1, 2, 7):
        assert await list_all(db, page_size, labels={"parity": "1"}) == [
            made[i].id for i in range(39, 0, -2)
        ]
        assert await list_all(
            db,
            page_size,
            filters={"agent": "a0"},
            labels={"parity": "0"},
            created_after=t[10],
            created_before=t[20],
        ) == [made[i].id for i in range(18, 9, -2)]
        assert await list_all(db, page_size, filters={"agent": "a0"}, labels={"parity": "1"}) == []
        assert await list_all(
            db, page_size, labels={"n": "17", "parity": "1"}, created_after=t[17]
        ) == [made[17].id]


async def test_workflow_executions_ranges_and_labels(db: Store) -> None:
    made = [
        await db.workflow_executions.create(
            WorkflowExecution(workflow="w", labels={"k": str(i % 2)})
        )
        for i in range(8)
    ]
    t = [e.create_time.ToNanoseconds() for e in made]

    page, token = await db.workflow_executions.list(
        filters={"workflow": "w"}, created_after=t[2], created_before=t[7], labels={"k": "0"}
    )

    assert ([e.id for e in page], token) == ([made[6].id, made[4].id, made[2].id], "")
