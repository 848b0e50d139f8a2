"""`emit` and `listen` with the recording host's in-memory event bus."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from polyfleet.dsl import Engine, WorkflowError, validate_document
from tests.helpers import assert_eventually
from tests.unit.dsl.support import Hooks, doc, run

EMIT_THEN_LISTEN = """
do:
  - send:
      emit:
        event:
          with: {type: order.placed, source: /shop, subject: '${ .id }', data: {id: '${ .id }'}}
  - wait:
      listen:
        to: {one: {with: {type: order.placed}}}
"""


def pointers(body: str) -> list[str]:
    return [p.pointer for p in validate_document(doc(body), known_agents=None)]


async def test_emit_publishes_through_the_host_and_listen_consumes_it() -> None:
    hooks = Hooks()
    output = await run(doc(EMIT_THEN_LISTEN), {"id": "o-1"}, hooks=hooks)
    assert output == [{"id": "o-1"}], "listen outputs the consumed events' data, as an array"
    assert hooks.events == [
        {
            "specversion": "1.0",
            "source": "/shop",
            "id": "/do/0/send#1",
            "type": "order.placed",
            "subject": "o-1",
            "data": {"id": "o-1"},
        }
    ]
    assert hooks.last("/do/0/send").output == {"id": "o-1"}, "emit passes its input on"


async def test_listen_waits_for_an_event_emitted_later() -> None:
    body = """
do:
  - both:
      fork:
        branches:
          - listener: {listen: {to: {one: {with: {type: ping}}}, read: envelope}}
          - emitter:
              do:
                - pause: {wait: {milliseconds: 50}}
                - ping: {emit: {event: {with: {type: ping, data: 1}}}}
"""
    hooks = Hooks()
    output = await run(doc(body), {}, hooks=hooks)
    assert output[0][0]["type"] == "ping" and output[0][0]["data"] == 1
    assert hooks.receive_calls >= 1


async def publish_later(hooks: Hooks, *events: dict[str, Any]) -> None:
    await assert_eventually(
        probe=lambda: asyncio.sleep(0, hooks.receive_calls), condition=lambda n: n >= 1
    )
    for index, event in enumerate(events):
        await hooks.emit_event(event, f"/external/{index}", 1)


async def test_all_consumes_one_event_per_filter_in_any_order() -> None:
    body = "do:\n  - l: {listen: {to: {all: [{with: {type: a}}, {with: {type: b}}]}}}\n"
    hooks = Hooks()
    events = ({"type": "b", "data": "B"}, {"type": "x", "data": "X"}, {"type": "a", "data": "A"})
    output, _ = await asyncio.gather(run(doc(body), {}, hooks=hooks), publish_later(hooks, *events))
    assert output == ["B", "A"], "consumed in arrival order, unrelated events skipped"


async def test_any_with_until_expression_and_until_strategy() -> None:
    until_count = """
do:
  - l: {listen: {to: {any: [{with: {type: n}}], until: '${ length >= 2 }'}}}
"""
    hooks = Hooks()
    events: tuple[dict[str, Any], ...] = (
        {"type": "n", "data": 1},
        {"type": "other"},
        {"type": "n", "data": 2},
    )
    output, _ = await asyncio.gather(
        run(doc(until_count), {}, hooks=hooks), publish_later(hooks, *events, {"type": "n"})
    )
    assert output == [1, 2]

    until_stop = """
do:
  - l: {listen: {to: {any: [], until: {one: {with: {type: stop}}}}}}
"""
    hooks = Hooks()
    events = ({"type": "x", "data": 1}, {"type": "y", "data": 2}, {"type": "stop", "data": 3})
    output, _ = await asyncio.gather(
        run(doc(until_stop), {}, hooks=hooks), publish_later(hooks, *events)
    )
    assert output == [1, 2], "an empty `any` takes every event; the `until` event is not consumed"


async def test_correlation_with_expect_and_between_events() -> None:
    body = """
do:
  - l:
      listen:
        to:
          all:
            - with: {type: paid}
              correlate: {order: {from: .data.order, expect: '${ .order }'}}
            - with: {type: shipped}
              correlate: {order: {from: .data.order, expect: '${ .order }'}}
        read: data
"""
    hooks = Hooks()
    events: tuple[dict[str, Any], ...] = (
        {"type": "paid", "data": {"order": 2}},
        {"type": "paid", "data": {"order": 1}},
        {"type": "shipped", "data": {"order": 2}},
        {"type": "shipped", "data": {"order": 1}},
    )
    output, _ = await asyncio.gather(
        run(doc(body), {"order": 1}, hooks=hooks), publish_later(hooks, *events)
    )
    assert output == [{"order": 1}, {"order": 1}]

    first_fixes = """
do:
  - l:
      listen:
        to:
          all:
            - {with: {type: a}, correlate: {k: {from: .subject}}}
            - {with: {type: b}, correlate: {k: {from: .subject}}}
        read: raw
"""
    hooks = Hooks()
    events = (
        {"type": "a", "subject": "s1", "data": {"n": 1}},
        {"type": "b", "subject": "s2", "data": {"n": 2}},
        {"type": "b", "subject": "s1", "data": {"n": 3}},
    )
    output, _ = await asyncio.gather(
        run(doc(first_fixes), {}, hooks=hooks), publish_later(hooks, *events)
    )
    assert output == ['{"n":1}', '{"n":3}'], "the first event fixes the key for the other filters"


async def test_data_filters() -> None:
    body = """
do:
  - l: {listen: {to: {any: [{with: {data: {kind: big}}}, {with: {data: '${ .size > 10 }'}}]}}}
"""
    hooks = Hooks()
    events = (
        {"type": "t", "data": {"kind": "small", "size": 1}},
        {"type": "t", "data": {"size": 11}},
    )
    output, _ = await asyncio.gather(run(doc(body), {}, hooks=hooks), publish_later(hooks, *events))
    assert output == [{"size": 11}]


async def test_listen_is_bounded_by_its_timeout() -> None:
    body = """
do:
  - l: {listen: {to: {one: {with: {type: never}}}}, timeout: {after: {milliseconds: 100}}}
"""
    with pytest.raises(WorkflowError) as caught:
        await run(doc(body), {})
    assert caught.value.status == 408 and caught.value.instance == "/do/0/l"


async def test_a_resumed_listen_neither_loses_nor_repeats_consumed_events() -> None:
    body = """
do:
  - l: {listen: {to: {all: [{with: {type: a}}, {with: {type: b}}]}, read: envelope}}
"""
    document = doc(body)
    hooks = Hooks()
    async with httpx.AsyncClient() as http:
        first = asyncio.create_task(Engine(document, hooks, http=http).run({}))
        await hooks.emit_event({"type": "a", "data": "A"}, "/x/0", 1)
        await assert_eventually(
            probe=lambda: asyncio.sleep(0, hooks.checkpoints),
            condition=lambda saved: len(saved) >= 1,
        )
        first.cancel()  # the runner dies with one of two events consumed
        with pytest.raises(asyncio.CancelledError):
            await first
        frame = hooks.checkpoints[-1]["frames"]["/do/0/l"]
        assert [e["data"] for e in frame["consumed"]] == ["A"] and frame["after"] == 1

        await hooks.emit_event({"type": "a", "data": "A2"}, "/x/1", 1)
        await hooks.emit_event({"type": "b", "data": "B"}, "/x/2", 1)
        resumed = Engine(document, hooks, http=http, resume=hooks.checkpoints[-1])
        output = await resumed.run({})
    assert [e["data"] for e in output] == ["A", "B"], "A consumed once, B not lost"


def test_validation_names_the_pointers() -> None:
    assert pointers("do:\n  - e: {emit: {event: {with: {source: /s}}}}\n") == [
        "/do/0/e/emit/event/with/type"
    ]
    assert pointers("do:\n  - e: {emit: {event: {with: {type: t, Bad_Ext: x}}}}\n") == [
        "/do/0/e/emit/event/with/Bad_Ext"
    ]
    assert pointers(
        "do:\n  - l: {listen: {to: {one: {with: {type: t}}}}, foreach: {do: []}}\n"
    ) == ["/do/0/l/foreach"]
    assert pointers("do:\n  - l: {listen: {to: {one: {with: {type: t}}}, read: all}}\n") == [
        "/do/0/l/listen/read"
    ]
    assert pointers("do:\n  - l: {listen: {to: {one: {}, until: .x}}}\n") == [
        "/do/0/l/listen/to/until"
    ]
    assert pointers("do:\n  - l: {listen: {to: {one: {}, all: []}}}\n") == ["/do/0/l/listen/to"]
    assert pointers("do:\n  - l: {listen: {to: {all: [{correlate: {k: {expect: 1}}}]}}}\n") == [
        "/do/0/l/listen/to/all/0/correlate/k/from"
    ]
    assert pointers(EMIT_THEN_LISTEN) == []
