"""Checkpoints and resume: completed tasks are not run again; state stays small."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from polyfleet.dsl import Engine, ResumeError, WorkflowError
from tests.helpers import assert_eventually
from tests.unit.dsl.support import Hooks, Server, doc, run

FIVE = """
do:
  - t1: {call: http, with: {method: post, endpoint: '${ $env.BASE + "/count/t1" }'},
         output: {as: '${ $input + {t1: .name} }'}}
  - t2: {call: http, with: {method: post, endpoint: '${ $env.BASE + "/count/t2" }'},
         output: {as: '${ $input + {t2: .name} }'}, export: {as: '${ {after2: true} }'}}
  - t3: {call: http, with: {method: get, endpoint: '${ $env.BASE + "/slow/t3?ms=" + $env.HOLD }'},
         output: {as: '${ $input + {t3: .name} }'}}
  - t4: {call: http, with: {method: post, endpoint: '${ $env.BASE + "/count/t4" }'},
         output: {as: '${ $input + {t4: .name, ctx: $context} }'}}
  - t5: {call: http, with: {method: post, endpoint: '${ $env.BASE + "/count/t5" }'},
         output: {as: '${ $input + {t5: .name} }'}}
"""
EXPECTED = {"t1": "t1", "t2": "t2", "t3": "t3", "t4": "t4", "ctx": {"after2": True}, "t5": "t5"}


async def crash_while(
    document: dict[str, Any],
    hooks: Hooks,
    http: httpx.AsyncClient,
    env: dict[str, str],
    server: Server,
    held: str,
) -> None:
    """Run until ``held`` is in flight on the server, then kill the run (as a dying runner)."""
    task = asyncio.create_task(Engine(document, hooks, http=http, env=env).run({}))
    await assert_eventually(
        probe=lambda: asyncio.sleep(0, server.calls[held]),
        condition=lambda calls: calls >= 1,
        timeout=3,
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_resume_after_task_2_of_5_does_not_rerun_tasks_1_and_2(
    server: Server, http: httpx.AsyncClient
) -> None:
    document = doc(FIVE)
    first = Hooks()
    await crash_while(document, first, http, {"BASE": server.url, "HOLD": "5000"}, server, "t3")
    checkpoint = first.checkpoints[-1]
    assert len(first.checkpoints) == 2  # after t1 and after t2
    assert checkpoint["frames"][""]["seq"]["next"] == 2

    second = Hooks()
    env = {"BASE": server.url, "HOLD": "10"}
    engine = Engine(document, second, http=http, env=env, resume=json.loads(json.dumps(checkpoint)))
    assert await engine.run({}) == EXPECTED
    assert dict(server.calls) == {"t1": 1, "t2": 1, "t3": 2, "t4": 1, "t5": 1}
    assert [r.id for r in second.reports if r.phase == "RUNNING"] == [
        "/do/2/t3",
        "/do/3/t4",
        "/do/4/t5",
    ]
    # The same output as a run that was never interrupted.
    assert await run(document, {}, http=http, env=env) == EXPECTED


async def test_resume_inside_a_loop_skips_finished_iterations(
    server: Server, http: httpx.AsyncClient
) -> None:
    document = doc(
        "do:\n"
        "  - setup: {set: {hits: []}}\n"
        "  - loop:\n"
        "      for: {in: '${ [range(5)] }', each: n}\n"
        "      do:\n"
        "        - hit:\n"
        "            call: http\n"
        "            with:\n"
        "              method: get\n"
        '              endpoint: \'${ $env.BASE + "/slow/i" + ($n|tostring) + "?ms=" + '
        '(if $n == 3 then $env.HOLD else "1" end) }\'\n'
        "            output: {as: '${ $input + {hits: ($input.hits + [.name])} }'}\n"
    )
    first = Hooks()
    await crash_while(document, first, http, {"BASE": server.url, "HOLD": "5000"}, server, "i3")
    state = first.checkpoints[-1]
    # Taken after iteration 2's last task: the iteration's task list is at its end.
    assert state["frames"]["/do/1/loop"]["index"] == 2
    assert state["frames"]["/do/1/loop"]["seq"]["next"] == 1
    assert "items" not in state["frames"]["/do/1/loop"]  # re-evaluated on resume

    second = Hooks()
    engine = Engine(
        document, second, http=http, env={"BASE": server.url, "HOLD": "1"}, resume=state
    )
    assert await engine.run({}) == {"hits": ["i0", "i1", "i2", "i3", "i4"]}
    assert dict(server.calls) == {"i0": 1, "i1": 1, "i2": 1, "i3": 2, "i4": 1}
    assert second.reports[0].id == "/do/1/loop"


async def test_resume_a_fork_keeps_finished_branches(
    server: Server, http: httpx.AsyncClient
) -> None:
    document = doc(
        "do:\n"
        "  - both:\n"
        "      fork:\n"
        "        branches:\n"
        "          - quick: {call: http, with: {method: get, endpoint: '${ $env.BASE + "
        '"/count/quick" }\'}}\n'
        "          - held: {call: http, with: {method: get, endpoint: '${ $env.BASE + "
        '"/slow/held?ms=" + $env.HOLD }\'}}\n'
    )
    first = Hooks()
    await crash_while(document, first, http, {"BASE": server.url, "HOLD": "5000"}, server, "held")
    await assert_eventually(
        probe=lambda: asyncio.sleep(0, first.checkpoints),
        condition=lambda checkpoints: len(checkpoints) >= 1,
        timeout=3,
    )
    state = first.checkpoints[-1]
    engine = Engine(
        document, Hooks(), http=http, env={"BASE": server.url, "HOLD": "1"}, resume=state
    )
    assert await engine.run({}) == [{"name": "quick", "count": 1}, {"name": "held"}]
    assert server.calls["quick"] == 1


async def test_resume_continues_retry_attempts(server: Server, http: httpx.AsyncClient) -> None:
    document = doc(
        "do:\n"
        "  - guarded:\n"
        "      try:\n"
        "        - a: {call: http, with: {method: get, "
        "endpoint: '${ $env.BASE + \"/count/a\" }'}}\n"
        "        - b: {call: http, with: {method: get, "
        "endpoint: '${ $env.BASE + \"/status/503\" }'}}\n"
        "      catch:\n"
        "        retry: {limit: {attempt: {count: 1}}}\n"
    )
    env = {"BASE": server.url}
    first = Hooks()
    with pytest.raises(WorkflowError):
        await run(document, hooks=first, http=http, env=env)
    assert (server.calls["a"], server.calls["status"]) == (2, 2)
    # After `a` of the second attempt: the retry budget is spent.
    state = first.checkpoints[-1]
    assert state["frames"]["/do/0/guarded"]["attempt"] == 2

    second = Hooks()
    with pytest.raises(WorkflowError) as caught:
        await Engine(document, second, http=http, env=env, resume=state).run({})
    assert caught.value.status == 503
    assert (server.calls["a"], server.calls["status"]) == (2, 3)
    assert second.last("/do/0/guarded/try/1/b").attempts == 2


async def test_checkpoints_stay_small_in_long_loops() -> None:
    hooks = Hooks()
    document = doc(
        "do:\n"
        "  - loop:\n"
        "      for: {in: '${ [range(300)] }', each: n}\n"
        "      do:\n"
        "        - add: {set: '${ {sum: (.sum + $n)} }'}\n"
    )
    assert await run(document, {"sum": 0}, hooks=hooks) == {"sum": sum(range(300))}
    sizes = [len(json.dumps(c)) for c in hooks.checkpoints]
    assert len(sizes) == 301
    assert max(sizes) < 1000
    assert max(sizes[250:]) <= sizes[10] + 20  # does not grow with iterations


async def test_resuming_a_different_document_is_refused(http: httpx.AsyncClient) -> None:
    hooks = Hooks()
    await run(doc("do:\n  - a: {set: {}}\n  - b: {set: {}}\n"), hooks=hooks)
    with pytest.raises(ResumeError):
        Engine(doc("do:\n  - a: {set: {x: 1}}\n"), Hooks(), http=http, resume=hooks.checkpoints[0])


async def test_resume_from_the_final_checkpoint_runs_nothing_again(
    http: httpx.AsyncClient,
) -> None:
    document = doc("do:\n  - a: {set: {v: 1}}\n  - b: {set: '${ . + {w: 2} }'}\n")
    first = Hooks()
    assert await run(document, hooks=first) == {"v": 1, "w": 2}
    second = Hooks()
    resumed = Engine(document, second, http=http, resume=first.checkpoints[-1])
    assert await resumed.run(None) == {"v": 1, "w": 2}
    assert second.reports == []
