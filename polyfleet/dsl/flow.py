"""Running tasks: the per-task lifecycle and task lists with flow directives.

Lifecycle of one task (the DSL specification's "Data Flow"; docs/dsl.md): `if` on the raw
input (false: a SKIPPED report, the raw input passed on) -> `input.from` -> RUNNING report ->
the task's executor, under its `timeout` -> `output.as` -> `export.as` into `$context` ->
COMPLETED report. Any error becomes a FAILED report and a :class:`WorkflowError` whose
`instance` is the task id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jsonschema

from polyfleet.dsl.errors import RUNTIME, TIMEOUT, VALIDATION, DslError, WorkflowError
from polyfleet.dsl.expressions import escape
from polyfleet.dsl.model import entry
from polyfleet.dsl.registry import StepResult, report_type, type_of
from polyfleet.dsl.reports import CANCELLED, COMPLETED, FAILED, RUNNING, SKIPPED
from polyfleet.dsl.runtime import Runtime, Scope, TaskCall, truthy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What running a task produced, for the task list that ran it."""

    output: Any
    flow: str | None
    ran: bool


def check_schema(block: Any, value: Any, what: str) -> None:
    """Validate ``value`` against the `schema` of an `input`/`output`/`export` block, if any."""
    if not isinstance(block, Mapping) or "schema" not in block:
        return
    try:
        jsonschema.validate(value, block["schema"]["document"])
    except jsonschema.ValidationError as exc:
        raise WorkflowError(VALIDATION, 400, title=f"Invalid {what}", detail=exc.message) from None


async def run_task(
    rt: Runtime, task_id: str, name: str, definition: Mapping[str, Any], raw: Any, scope: Scope
) -> Outcome:
    """Run one task through its whole lifecycle (or resume it from its checkpoint frame)."""
    kind = report_type(definition)
    call = TaskCall(task_id, name, kind, definition, scope, raw, datetime.now(UTC))
    call.attempts = scope.attempt
    spec = type_of(definition)
    composite = spec is not None and spec.composite
    resumed = rt.resume_frames.pop(task_id, None) if composite else None
    try:
        if resumed is not None:
            call.input, call.frame, call.resumed = resumed.get("input"), resumed, True
        else:
            variables = rt.variables(call, raw)
            if "if" in definition and not truthy(rt.field(definition["if"], raw, variables)):
                call.input = raw
                await rt.report(call, SKIPPED, output=raw, ended=True)
                return Outcome(raw, None, ran=False)
            check_schema(definition.get("input"), raw, "task input")
            call.input = _transform(rt, definition.get("input"), "from", raw, variables)
            call.frame = {"input": call.input}
    except WorkflowError as exc:
        error = exc.located(task_id)
        await rt.report(call, FAILED, error=error, ended=True)
        raise error from None
    if composite:
        rt.frames[task_id] = call.frame
    rt.running[task_id] = None
    completed = False
    try:
        await rt.report(call, RUNNING)
        output = await _execute(rt, call)
        completed = True
        await rt.report(call, COMPLETED, output=output.output, ended=True)
    except asyncio.CancelledError:
        if not completed:
            aborted = rt.abort_error
            await rt.report(call, FAILED if aborted else CANCELLED, error=aborted, ended=True)
        raise
    except WorkflowError as exc:
        error = exc.located(task_id)
        await rt.report(call, FAILED, error=error, ended=True)
        raise error from None
    finally:
        # No suspension point between dropping the frame and the caller recording the
        # outcome in its own frame: a checkpoint never sees the task in neither place.
        rt.running.pop(task_id, None)
        if composite:
            rt.frames.pop(task_id, None)
    return Outcome(output.output, output.flow or definition.get("then"), ran=True)


async def _execute(rt: Runtime, call: TaskCall) -> StepResult:
    """The executor under the task's timeout, then `output.as` and `export.as`."""
    definition = call.definition
    seconds = rt.timeout_seconds(definition.get("timeout"))
    try:
        async with asyncio.timeout(seconds) as deadline:
            spec = type_of(definition)
            assert spec is not None, "validation admits registered task types only"
            step = await spec.run(rt, call)
        variables = rt.variables(call, call.input)
        output = _transform(rt, definition.get("output"), "as", step.output, variables)
        check_schema(definition.get("output"), output, "task output")
        if isinstance(definition.get("export"), Mapping) and "as" in definition["export"]:
            variables["output"] = output
            context = rt.field(definition["export"]["as"], output, variables)
            check_schema(definition["export"], context, "exported context")
            rt.context = context
    except TimeoutError as exc:
        if not deadline.expired():
            raise _unexpected(call, exc) from exc
        raise WorkflowError(
            TIMEOUT,
            408,
            title="Task timed out",
            detail=f"task {call.id} did not finish within {seconds:g}s",
            instance=call.id,
        ) from None
    except (WorkflowError, DslError, asyncio.CancelledError):
        raise
    except Exception as exc:
        raise _unexpected(call, exc) from exc
    return StepResult(output, step.flow)


def _unexpected(call: TaskCall, exc: Exception) -> WorkflowError:
    """An exception no task meant to raise, as a runtime error that `try` can catch."""
    logger.warning("task %s failed unexpectedly: %s", call.id, type(exc).__name__, exc_info=True)
    return WorkflowError(
        RUNTIME, 500, title=f"Task failed: {type(exc).__name__}", detail=str(exc), instance=call.id
    )


def _transform(rt: Runtime, block: Any, member: str, data: Any, variables: dict[str, Any]) -> Any:
    """Apply `input.from` / `output.as` when present; identity otherwise."""
    if isinstance(block, Mapping) and member in block:
        return rt.field(block[member], data, variables)
    return data


@dataclass(frozen=True)
class SequenceOutcome:
    """The output of a task list, and whether an `end` directive stopped the workflow."""

    output: Any
    ended: bool


async def run_sequence(
    rt: Runtime, list_id: str, items: list[Any], seq: dict[str, Any], scope: Scope
) -> SequenceOutcome:
    """Run a task list from the position recorded in ``seq``, following flow directives.

    ``seq`` is part of the enclosing checkpoint frame (``{"next", "data"}``); it is
    updated after every task, and a checkpoint is taken after every task that ran.
    """
    entries = [entry(item) for item in items]
    positions = {name: index for index, (name, _task) in enumerate(entries)}
    index: int = seq.get("next", 0)
    data = seq.get("data")
    while index < len(entries) and not seq.get("ended"):
        # A guaranteed suspension point: `then:` loops over cheap tasks must stay
        # cancellable and let timers (timeouts) fire.
        await asyncio.sleep(0)
        name, task = entries[index]
        outcome = await run_task(rt, f"{list_id}/{index}/{escape(name)}", name, task, data, scope)
        data = outcome.output
        directive = (outcome.flow or "continue") if outcome.ran else "continue"
        if directive == "continue":
            index += 1
        elif directive in ("exit", "end"):
            index = len(entries)
            seq["ended"] = directive == "end"
        else:
            index = positions[directive]
        seq["next"], seq["data"] = index, data
        if outcome.ran:
            await rt.checkpoint()
    return SequenceOutcome(data, bool(seq.get("ended")))
