"""Agents and workflows: CRUD, unique names, apply and optimistic versions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from polyfleet.v1 import agent_pb2, common_pb2, workflow_pb2
from store import (
    AlreadyExistsError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    Store,
    StoreError,
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store") as opened:
        yield opened


async def test_create_sets_id_version_and_times(db: Store) -> None:
    given = agent_pb2.Agent(name="helper", description="helps")

    agent = await db.agents.create(given)

    assert agent.id.startswith("agt-")
    assert len(agent.id) == len("agt-") + 20
    assert agent.version == 1
    assert agent.create_time.ToNanoseconds() > 0
    assert agent.update_time == agent.create_time
    assert given.id == "" and given.version == 0, "the caller's message is not modified"
    assert await db.agents.get(agent.id) == agent
    assert await db.agents.get("helper") == agent


async def test_create_keeps_a_preset_id(db: Store) -> None:
    agent = await db.agents.create(agent_pb2.Agent(id="agt-mine", name="mine"))

    assert agent.id == "agt-mine"
    with pytest.raises(AlreadyExistsError):
        await db.agents.create(agent_pb2.Agent(id="agt-mine", name="other"))


async def test_create_rejects_a_taken_name(db: Store) -> None:
    await db.agents.create(agent_pb2.Agent(name="dup"))

    with pytest.raises(AlreadyExistsError) as caught:
        await db.agents.create(agent_pb2.Agent(name="dup"))

    assert (caught.value.kind, caught.value.key) == ("agent", "dup")
    assert str(caught.value) == "agent 'dup' already exists"
    assert isinstance(caught.value, StoreError)


async def test_create_rejects_an_empty_name(db: Store) -> None:
    with pytest.raises(InvalidArgumentError):
        await db.agents.create(agent_pb2.Agent())


async def test_get_unknown_raises_not_found(db: Store) -> None:
    with pytest.raises(NotFoundError) as caught:
        await db.agents.get("foo")

    assert str(caught.value) == "agent 'foo' not found"
    assert (caught.value.kind, caught.value.key) == ("agent", "foo")
    with pytest.raises(NotFoundError):
        await db.agents.get("x" * 1000)  # longer than any key: still just not found


async def test_update_by_name_replaces_the_definition(db: Store) -> None:
    created = await db.agents.create(
        agent_pb2.Agent(name="a", description="old", labels={"k": "v"})
    )

    updated = await db.agents.update(agent_pb2.Agent(name="a", description="new"))

    assert updated.id == created.id
    assert updated.create_time == created.create_time
    assert updated.version == 2
    assert updated.update_time.ToNanoseconds() >= created.update_time.ToNanoseconds()
    assert updated.description == "new"
    assert dict(updated.labels) == {}, "update replaces the whole definition"
    assert await db.agents.get("a") == updated


async def test_update_by_id_renames(db: Store) -> None:
    created = await db.agents.create(agent_pb2.Agent(name="before"))

    renamed = await db.agents.update(agent_pb2.Agent(id=created.id, name="after"))

    assert renamed.name == "after"
    assert (await db.agents.get("after")).id == created.id
    with pytest.raises(NotFoundError):
        await db.agents.get("before")
    # The old name is free again.
    await db.agents.create(agent_pb2.Agent(name="before"))


async def test_rename_to_a_taken_name_fails_and_changes_nothing(db: Store) -> None:
    first = await db.agents.create(agent_pb2.Agent(name="first"))
    await db.agents.create(agent_pb2.Agent(name="second"))

    with pytest.raises(AlreadyExistsError):
        await db.agents.update(agent_pb2.Agent(id=first.id, name="second"))

    assert await db.agents.get("first") == first


async def test_update_unknown_raises_not_found(db: Store) -> None:
    with pytest.raises(NotFoundError):
        await db.agents.update(agent_pb2.Agent(name="ghost"))
    with pytest.raises(NotFoundError):
        await db.agents.update(agent_pb2.Agent(id="agt-ghost", name="ghost"))


async def test_stale_expected_version_raises_conflict_and_keeps_data(db: Store) -> None:
    created = await db.agents.create(agent_pb2.Agent(name="a", description="v1"))
    current = await db.agents.update(agent_pb2.Agent(name="a", description="v2"), 1)

    with pytest.raises(ConflictError) as caught:
        await db.agents.update(agent_pb2.Agent(name="a", description="stale"), created.version)

    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert caught.value.key == created.id
    assert await db.agents.get("a") == current
    matching = await db.agents.update(agent_pb2.Agent(name="a", description="v3"), 2)
    assert matching.version == 3


async def test_delete_by_name_and_by_id(db: Store) -> None:
    one = await db.agents.create(agent_pb2.Agent(name="one"))
    await db.agents.create(agent_pb2.Agent(name="two"))

    await db.agents.delete("one")
    await db.agents.delete((await db.agents.get("two")).id)

    for key in ("one", "two", one.id):
        with pytest.raises(NotFoundError):
            await db.agents.get(key)
    with pytest.raises(NotFoundError):
        await db.agents.delete("one")
    assert await db.agents.list() == ([], "")
    await db.agents.create(agent_pb2.Agent(name="one"))


async def test_apply_creates_then_replaces(db: Store) -> None:
    created, was_created = await db.agents.apply(agent_pb2.Agent(name="ap", description="1"))
    replaced, replaced_created = await db.agents.apply(agent_pb2.Agent(name="ap", description="2"))

    assert was_created and not replaced_created
    assert replaced.id == created.id
    assert replaced.create_time == created.create_time
    assert (replaced.version, replaced.description) == (2, "2")


async def test_concurrent_applies_create_once(db: Store) -> None:
    results = await asyncio.gather(
        *(db.agents.apply(agent_pb2.Agent(name="race", description=str(i))) for i in range(20))
    )

    assert sum(created for _, created in results) == 1
    assert len({agent.id for agent, _ in results}) == 1
    assert sorted(agent.version for agent, _ in results) == list(range(1, 21))
    agents, _ = await db.agents.list()
    assert len(agents) == 1


async def test_workflows_share_the_named_repository(db: Store) -> None:
    workflow = await db.workflows.create(workflow_pb2.Workflow(name="wf", document="do: []"))

    assert workflow.id.startswith("wfl-")
    assert (await db.workflows.get("wf")).document == "do: []"
    with pytest.raises(NotFoundError) as caught:
        await db.workflows.get("nope")
    assert str(caught.value) == "workflow 'nope' not found"
    # Names are unique per kind, not across kinds.
    await db.agents.create(agent_pb2.Agent(name="wf"))
    applied, created = await db.workflows.apply(workflow_pb2.Workflow(name="wf", document="x"))
    assert not created and applied.version == 2
    await db.workflows.delete("wf")
    assert await db.workflows.list() == ([], "")


async def test_a_replace_keeps_who_created_the_resource(db: Store) -> None:
    alice = common_pb2.Actor(subject="alice", role="operator", via="token")
    bob = common_pb2.Actor(subject="bob", role="admin", via="oidc")
    await db.agents.create(agent_pb2.Agent(name="a", created_by=alice, updated_by=alice))
    updated = await db.agents.update(agent_pb2.Agent(name="a", created_by=bob, updated_by=bob))
    assert (updated.created_by, updated.updated_by) == (alice, bob)
    applied, created = await db.agents.apply(agent_pb2.Agent(name="a", updated_by=bob))
    assert not created and applied.created_by == alice
    assert (await db.agents.get("a")).created_by == alice
