"""`emit` and `listen` through a real fleet: EventService, RunnerService and the event store."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from polyfleet.client import PolyfleetError
from polyfleet.config import RunnerSettings
from polyfleet.error_details import field_violations
from polyfleet.roles import Role
from polyfleet.v1 import common_pb2, event_pb2, event_pb2_grpc, workflow_execution_pb2
from tests.conftest import Fleet, add_runner
from tests.helpers import assert_eventually, run_cli
from tests.integration.workflows.conftest import (
    ONLY_WORKFLOWS,
    apply_workflow,
    finish,
    get,
    output,
    start,
)
from tests.processes import runner_process

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED

LISTENER = """
do:
  - hear:
      listen:
        to:
          one:
            with: {type: test.order}
            correlate: {order: {from: .data.order, expect: '${ $workflow.input.order }'}}
"""
EMITTER = """
do:
  - say:
      emit:
        event:
          with: {type: test.order, subject: s, data: {order: '${ $workflow.input.order }'}}
"""


async def task_phase(fleet: Fleet, execution_id: str, task_id: str) -> int:
    for task in (await get(fleet, execution_id)).status.tasks:
        if task.id == task_id:
            return task.phase
    return common_pb2.TASK_PHASE_UNSPECIFIED


async def listening(fleet: Fleet, execution_id: str, task_id: str = "/do/0/hear") -> None:
    await assert_eventually(
        lambda: task_phase(fleet, execution_id, task_id),
        lambda phase: phase == common_pb2.TASK_PHASE_RUNNING,
        timeout=30,
    )


def completed(execution: workflow_execution_pb2.WorkflowExecution) -> Any:
    assert execution.status.phase == COMPLETED, execution.status.error
    return output(execution)


async def test_one_execution_listens_another_emits(fleet: Fleet) -> None:
    await apply_workflow(fleet, "listener", LISTENER)
    await apply_workflow(fleet, "emitter", EMITTER)
    listener = await start(fleet, "listener", {"order": 7})
    await listening(fleet, listener.id)
    other = await start(fleet, "emitter", {"order": 8})  # another order: not correlated
    emitter = await start(fleet, "emitter", {"order": 7})
    assert completed(await finish(fleet, other.id)) == {"order": 8}
    assert completed(await finish(fleet, emitter.id)) == {"order": 7}, "emit passes input on"
    assert completed(await finish(fleet, listener.id)) == [{"order": 7}]

    # The emitted event is stored with its execution, an id per task attempt and a source
    # naming the execution.
    listed = await fleet.client.events.list(execution_id=emitter.id)
    assert [r.task_id for r in listed.events] == ["/do/0/say"]
    event = listed.events[0].event
    assert event.source == f"/polyfleet/workflow-executions/{emitter.id}"
    assert event.id.startswith("emit-") and event.subject == "s"


async def test_an_event_emitted_before_the_listen_starts_is_not_lost(fleet: Fleet) -> None:
    gate = "do:\n  - gate: {listen: {to: {one: {with: {type: test.go}}}}}\n"
    await apply_workflow(fleet, "late-listener", gate + LISTENER.replace("do:\n", ""))
    await apply_workflow(fleet, "emitter", EMITTER)
    # Published before the listener exists: never seen by it.
    await fleet.client.events.publish(
        {"id": "old", "source": "/test", "type": "test.order", "data": {"order": 9, "old": True}}
    )
    listener = await start(fleet, "late-listener", {"order": 9})
    await listening(fleet, listener.id, "/do/0/gate")
    emitter = await start(fleet, "emitter", {"order": 9})
    completed(await finish(fleet, emitter.id))
    # The emitter finished while the listener was still in its first task.
    assert await task_phase(fleet, listener.id, "/do/1/hear") == common_pb2.TASK_PHASE_UNSPECIFIED
    await fleet.client.events.publish({"id": "go", "source": "/test", "type": "test.go"})
    assert completed(await finish(fleet, listener.id)) == [{"order": 9}]


async def test_published_events_wake_all_any_until_and_correlated_listeners(fleet: Fleet) -> None:
    await apply_workflow(
        fleet,
        "all",
        "do:\n  - hear: {listen: {to: {all: [{with: {type: a}}, {with: {type: b}}]}}}\n",
    )
    await apply_workflow(
        fleet,
        "any",
        """
        do:
          - hear:
              listen:
                to: {any: [{with: {type: n}}], until: {one: {with: {type: stop}}}}
                read: envelope
        """,
    )
    await apply_workflow(
        fleet,
        "pair",
        """
        do:
          - hear:
              listen:
                to:
                  all:
                    - {with: {type: paid}, correlate: {k: {from: .subject}}}
                    - {with: {type: shipped}, correlate: {k: {from: .subject}}}
                read: raw
        """,
    )
    runs = [await start(fleet, name) for name in ("all", "any", "pair")]
    for run in runs:
        await listening(fleet, run.id)
    for number, (type, subject, data) in enumerate(
        [
            ("b", "", "B"),
            ("n", "", 1),
            ("paid", "x", {"p": "x"}),
            ("shipped", "y", {"s": "y"}),
            ("a", "", "A"),
            ("n", "", 2),
            ("shipped", "x", {"s": "x"}),
            ("stop", "", None),
            ("n", "", 3),
        ]
    ):
        event: dict[str, Any] = {"id": f"e{number}", "source": "/test", "type": type}
        if subject:
            event["subject"] = subject
        if data is not None:
            event["data"] = data
        published = await fleet.client.events.publish(event)
        assert published.published and published.record.sequence > 0
    all_, any_, pair = [completed(await finish(fleet, run.id)) for run in runs]
    assert all_ == ["B", "A"]
    assert [(e["type"], e["data"]) for e in any_] == [("n", 1), ("n", 2)]
    assert pair == ['{"p":"x"}', '{"s":"x"}']


async def test_publish_validates_the_event_and_needs_an_operator(fleet: Fleet) -> None:
    with pytest.raises(PolyfleetError) as caught:
        await fleet.client.events.publish({"id": "1", "source": "/test"})
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    stub = event_pb2_grpc.EventServiceStub(fleet.channel)
    request = event_pb2.PublishEventRequest(
        event=event_pb2.CloudEvent(id="1", source="/t", type="t", specversion="0.3")
    )
    with pytest.raises(grpc.aio.AioRpcError) as rpc:
        await stub.PublishEvent(request)
    assert rpc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in field_violations(rpc.value)] == ["event.specversion"]

    channel = fleet.channel_as(Role.READER)
    try:
        reader = event_pb2_grpc.EventServiceStub(channel)
        request.event.specversion = "1.0"
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await reader.PublishEvent(request)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        listed = await reader.ListEvents(event_pb2.ListEventsRequest())
        assert list(listed.events) == [], "nothing was published"
    finally:
        await channel.close()


async def test_cli_publish_wakes_a_listener_and_lists_events(fleet: Fleet) -> None:
    await apply_workflow(fleet, "listener", LISTENER)
    listener = await start(fleet, "listener", {"order": 3})
    await listening(fleet, listener.id)
    code, out, err = await run_cli(
        fleet, "events", "publish", "--type", "test.order", "--source", "/cli",
        "--data", '{"order": 3}', "--id", "cli-1", role=Role.READER,
    )  # fmt: skip
    assert code != 0 and "PERMISSION_DENIED" in err, (out, err)
    code, out, err = await run_cli(
        fleet, "events", "publish", "--type", "test.order", "--source", "/cli",
        "--data", '{"order": 3}', "--id", "cli-1", "--extension", "tenant=acme",
        role=Role.OPERATOR,
    )  # fmt: skip
    assert code == 0, err
    assert "event cli-1 published (sequence 1)" in out
    assert completed(await finish(fleet, listener.id)) == [{"order": 3}]
    code, out, err = await run_cli(fleet, "events", "list", "--type", "test.order", "-o", "json")
    assert code == 0, err
    [record] = json.loads(out)["events"]
    assert record["event"]["extensions"] == {"tenant": "acme"}
    assert record["event"]["data"] == {"order": 3}


async def test_a_listen_resumed_after_a_runner_crash_keeps_what_it_consumed(
    runnerless: Fleet, tmp_path: Path
) -> None:
    await apply_workflow(
        runnerless,
        "pair",
        "do:\n  - hear: {listen: {to: {all: [{with: {type: a}}, {with: {type: b}}]}}}\n",
    )
    created = await start(runnerless, "pair")
    await runnerless.client.events.publish({"id": "1", "source": "/t", "type": "a", "data": 1})
    # Runner A consumes `a`, stores the listen's checkpoint (number 1), and dies.
    dies = ("tests.faults", "kill-after-checkpoint", "1")
    async with runner_process(runnerless, tmp_path / "runner-a.log", dies, **ONLY_WORKFLOWS) as a:
        await asyncio.to_thread(a.wait, 30)
    assert a.returncode == -signal.SIGKILL
    assert runnerless.orchestrator.db is not None
    stored = await runnerless.orchestrator.db.checkpoints.get(created.id)
    assert stored is not None
    frame = json.loads(stored.data)["frames"]["/do/0/hear"]
    assert (frame["consumed"], frame["after"]) == ([1], 1), "the listen's progress is stored"
    await runnerless.client.events.publish({"id": "2", "source": "/t", "type": "a", "data": 2})
    await runnerless.client.events.publish({"id": "3", "source": "/t", "type": "b", "data": 3})
    await add_runner(
        runnerless, RunnerSettings(agents=False, heartbeat_interval=timedelta(seconds=1))
    )
    done = await finish(runnerless, created.id, timeout=60)
    assert completed(done) == [1, 3], "`a` consumed once (event 2 not taken), `b` not lost"
