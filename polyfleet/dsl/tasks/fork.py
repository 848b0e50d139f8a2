"""`fork`: branches run concurrently; with `compete: true` the first to succeed wins.

Each branch is one task with id ``<fork id>/fork/branches/<i>/<name>`` and gets the
fork's input. Without `compete` the output is the list of branch outputs in declaration
order, and the first failing branch cancels the others and fails the fork. With
`compete` the first branch to complete successfully provides the output and the others
are cancelled (their HTTP requests aborted); the fork fails only when every branch failed,
with the first error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Any

from polyfleet.dsl.checks import Checker
from polyfleet.dsl.errors import WorkflowError
from polyfleet.dsl.expressions import escape
from polyfleet.dsl.flow import Outcome, run_task
from polyfleet.dsl.model import entry
from polyfleet.dsl.registry import StepResult, TaskType
from polyfleet.dsl.runtime import Runtime, TaskCall


def _check_fork(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    fork = c.members(
        f"{p}/fork", task.get("fork"), "'fork'", {"branches", "compete"}, required=("branches",)
    )
    if fork is None:
        return
    if "compete" in fork and not isinstance(fork["compete"], bool):
        c.add(f"{p}/fork/compete", "'compete' must be true or false")
    branches = fork.get("branches")
    if "branches" not in fork:
        return
    if not isinstance(branches, list) or not branches:
        c.add(f"{p}/fork/branches", "must be a non-empty list of tasks")
        return
    for index, item in enumerate(branches):
        if not isinstance(item, Mapping) or len(item) != 1:
            c.add(f"{p}/fork/branches/{index}", "a branch must map one task name to a task")
            continue
        ((name, branch),) = item.items()
        # A branch is a single task: only continue, exit and end make sense after it.
        c.task(f"{p}/fork/branches/{index}/{escape(str(name))}", branch, variables, ())


async def run_fork(rt: Runtime, call: TaskCall) -> StepResult:
    """Run the branches; finished ones are kept in the checkpoint frame (``done``)."""
    branches: list[Any] = call.definition["fork"]["branches"]
    compete = bool(call.definition["fork"].get("compete", False))
    done: dict[str, Any] = call.frame.setdefault("done", {})
    if compete and done:
        return StepResult(next(iter(done.values())))

    async def branch(index: int) -> Outcome:
        name, task = entry(branches[index])
        task_id = f"{call.id}/fork/branches/{index}/{escape(name)}"
        outcome = await run_task(rt, task_id, name, task, call.input, call.scope)
        # Recorded before yielding: a checkpoint taken by another branch must not see
        # this branch neither running nor done.
        done[str(index)] = outcome.output
        return outcome

    running = {asyncio.create_task(branch(i)) for i in range(len(branches)) if str(i) not in done}
    ended = False
    first_error: WorkflowError | None = None
    try:
        while running:
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for future in finished:
                running.discard(future)
                error = future.exception()
                if error is not None:
                    if not isinstance(error, WorkflowError) or not compete:
                        raise error
                    first_error = first_error or error
                    continue
                outcome = future.result()
                ended = ended or outcome.flow == "end"
                await rt.checkpoint()
                if compete:
                    return StepResult(outcome.output, "end" if ended else None)
    finally:
        await _cancel(running)
    if compete:
        assert first_error is not None
        raise first_error
    outputs = [done[str(i)] for i in range(len(branches))]
    return StepResult(outputs, "end" if ended else None)


async def _cancel(running: set[asyncio.Task[Outcome]]) -> None:
    """Cancel unfinished branches and wait until they have reported and let go."""
    if not running:
        return
    for future in running:
        future.cancel()
    # asyncio.wait neither raises the branches' errors nor swallows our own cancellation.
    await asyncio.wait(running)
    for future in running:
        if not future.cancelled():
            future.exception()  # already reported by the branch; marks it retrieved


FORK = TaskType("fork", frozenset({"fork"}), _check_fork, run_fork, composite=True)
