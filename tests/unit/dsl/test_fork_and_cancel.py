"""Concurrency: fork branches really overlap, compete cancels losers, cancellation aborts work."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from polyfleet.dsl import TIMEOUT, Engine, WorkflowError
from tests.helpers import assert_eventually
from tests.unit.dsl.support import Hooks, Server, doc, run


def slow(name: str, url: str, ms: int) -> str:
    return (
        f"{{{name}: {{call: http, with: {{method: get, endpoint: '{url}/slow/{name}?ms={ms}'}}}}}}"
    )


async def test_fork_runs_http_branches_concurrently(
    server: Server, http: httpx.AsyncClient
) -> None:
    hooks = Hooks()
    document = doc(
        "do:\n"
        "  - both:\n"
        "      fork:\n"
        f"        branches: [{slow('a', server.url, 300)}, {slow('b', server.url, 300)}]\n"
    )
    result = await run(document, hooks=hooks, http=http)
    assert result == [{"name": "a"}, {"name": "b"}]
    assert server.max_in_flight == 2  # both requests were in the server at once
    ids = {r.id for r in hooks.reports}
    assert {"/do/0/both/fork/branches/0/a", "/do/0/both/fork/branches/1/b"} <= ids


async def test_compete_takes_the_first_and_cancels_the_slower(
    server: Server, http: httpx.AsyncClient
) -> None:
    hooks = Hooks()
    document = doc(
        "do:\n"
        "  - race:\n"
        "      fork:\n"
        "        compete: true\n"
        f"        branches: [{slow('slow', server.url, 3000)}, {slow('fast', server.url, 50)}]\n"
    )
    assert await run(document, hooks=hooks, http=http) == {"name": "fast"}
    await assert_eventually(
        probe=lambda: asyncio.sleep(0, server.disconnected),
        condition=lambda seen: "slow" in seen,
        timeout=3,
        message="the server never saw the losing request disconnect",
    )
    assert hooks.last("/do/0/race/fork/branches/0/slow").phase == "CANCELLED"
    assert hooks.last("/do/0/race/fork/branches/1/fast").phase == "COMPLETED"
    assert hooks.last("/do/0/race").phase == "COMPLETED"
    assert "slow" not in server.completed


async def test_a_failing_branch_fails_the_fork_and_cancels_the_rest(
    server: Server, http: httpx.AsyncClient
) -> None:
    hooks = Hooks()
    document = doc(
        "do:\n"
        "  - both:\n"
        "      fork:\n"
        f"        branches: [{slow('long', server.url, 3000)}, "
        "{bad: {raise: {error: {type: https://e/x, status: 400}}}}]\n"
    )
    with pytest.raises(WorkflowError) as caught:
        await run(document, hooks=hooks, http=http)
    assert caught.value.instance == "/do/0/both/fork/branches/1/bad"
    assert hooks.last("/do/0/both/fork/branches/0/long").phase == "CANCELLED"
    assert hooks.last("/do/0/both").phase == "FAILED"


async def test_compete_fails_only_when_every_branch_fails() -> None:
    document = doc(
        "do:\n"
        "  - race:\n"
        "      fork:\n"
        "        compete: true\n"
        "        branches:\n"
        "          - a: {raise: {error: {type: https://e/a, status: 400}}}\n"
        "          - b: {raise: {error: {type: https://e/b, status: 401}}}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        await run(document)
    assert caught.value.type in ("https://e/a", "https://e/b")


async def test_cancelling_run_aborts_the_in_flight_http_call(
    server: Server, http: httpx.AsyncClient
) -> None:
    hooks = Hooks()
    document = doc(f"do:\n  - first: {{set: {{}}}}\n  - {slow('held', server.url, 5000)[1:-1]}\n")
    task = asyncio.create_task(Engine(document, hooks, http=http).run({}))
    await assert_eventually(
        probe=lambda: asyncio.sleep(0, server.calls["held"]),
        condition=lambda calls: calls == 1,
        timeout=3,
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert hooks.last("/do/1/held").phase == "CANCELLED"
    await assert_eventually(
        probe=lambda: asyncio.sleep(0, server.disconnected),
        condition=lambda seen: "held" in seen,
        timeout=3,
        message="the server never saw the request aborted",
    )


async def test_cancelling_run_cancels_agent_calls_and_timers() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def agent(name: str, message: str, task_id: str) -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    hooks = Hooks(agent)
    document = doc(
        "do:\n"
        "  - both:\n"
        "      fork:\n"
        "        branches:\n"
        "          - ask: {call: agent, with: {agent: a, message: hi}}\n"
        "          - nap: {wait: PT30S}\n"
    )
    async with httpx.AsyncClient() as client:
        task = asyncio.create_task(Engine(document, hooks, http=client).run({}))
        await asyncio.wait_for(started.wait(), 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 3)
    assert cancelled.is_set()
    assert {
        hooks.last(i).phase
        for i in ("/do/0/both/fork/branches/0/ask", "/do/0/both/fork/branches/1/nap", "/do/0/both")
    } == {"CANCELLED"}


async def test_workflow_timeout_names_the_running_task() -> None:
    hooks = Hooks()
    document = doc(
        "timeout: {after: {milliseconds: 150}}\n"
        "do:\n"
        "  - quick: {set: {}}\n"
        "  - outer:\n"
        "      do:\n"
        "        - sleepy: {wait: PT10S}\n"
    )
    started = time.monotonic()
    with pytest.raises(WorkflowError) as caught:
        await run(document, hooks=hooks)
    assert time.monotonic() - started < 2
    error = caught.value
    assert (error.type, error.status, error.instance) == (TIMEOUT, 408, "/do/1/outer/do/0/sleepy")
    assert "/do/1/outer/do/0/sleepy" in error.detail
    sleepy = hooks.last("/do/1/outer/do/0/sleepy")
    assert sleepy.phase == "FAILED" and sleepy.error is not None
    assert sleepy.error.type == TIMEOUT
    assert hooks.last("/do/0/quick").phase == "COMPLETED"


async def test_a_task_timeout_can_be_caught() -> None:
    document = doc(
        "do:\n"
        "  - guarded:\n"
        "      try:\n"
        "        - sleepy: {wait: PT10S, timeout: {after: PT0.05S}}\n"
        "      catch:\n"
        "        errors: {with: {type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout}}\n"
        "        do:\n"
        "          - note: {set: {timedOut: '${ $error.instance }'}}\n"
    )
    assert await run(document) == {"timedOut": "/do/0/guarded/try/0/sleepy"}


async def test_named_timeouts_from_use() -> None:
    document = doc(
        "use: {timeouts: {short: {after: PT0.05S}}}\n"
        "do:\n  - sleepy: {wait: PT10S, timeout: short}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        await run(document)
    assert caught.value.instance == "/do/0/sleepy"
