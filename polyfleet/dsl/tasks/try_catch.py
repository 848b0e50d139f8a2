"""`try`/`catch` with retries.

An error raised by the `try` tasks is *caught* when it matches `catch.errors.with` (every
given field equal), `catch.when` is true and `catch.exceptWhen` is not (both see the error
as `$<catch.as>`, default `$error`, over the try task's input). An uncaught error
propagates unchanged.

With a `retry` policy (inline or from `use.retries`), a caught error re-runs the whole
`try` list while the policy allows: `limit.attempt.count` is the number of *retries*
after the first attempt (as in the reference runtime), `limit.duration` bounds the time
since the first attempt began, and the policy's own `when`/`exceptWhen` may veto. The
delay before retry n (1-based) is `delay` (constant, the default), `delay * n` (linear)
or `delay * 2^(n-1)` (exponential), plus a uniform random `jitter`. Once retries are
exhausted, `catch.do` runs as the fallback if there is one; otherwise the last error
propagates.

Without a retry policy, a caught error runs `catch.do` (its output is the try task's
output) or, without `catch.do`, is swallowed and the try task outputs its input.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from polyfleet.dsl.checks import Checker
from polyfleet.dsl.durations import parse_duration
from polyfleet.dsl.errors import ERROR_FIELDS, WorkflowError
from polyfleet.dsl.expressions import IDENTIFIER
from polyfleet.dsl.flow import run_sequence
from polyfleet.dsl.registry import StepResult, TaskType
from polyfleet.dsl.reports import RUNNING
from polyfleet.dsl.runtime import Runtime, TaskCall, truthy

_BACKOFFS = ("constant", "linear", "exponential")


def _check_try(
    c: Checker, p: str, task: Mapping[str, Any], variables: frozenset[str], _s: Collection[str]
) -> None:
    c.task_list(f"{p}/try", task.get("try"), variables)
    if "catch" not in task:
        c.add(f"{p}/catch", "missing required property 'catch'")
        return
    cp = f"{p}/catch"
    catch = c.members(
        cp, task["catch"], "'catch'", {"errors", "as", "when", "exceptWhen", "retry", "do"}
    )
    if catch is None:
        return
    name = catch.get("as", "error")
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        c.add(f"{cp}/as", "'as' must be a variable name such as 'error'")
        name = "error"
    inner = variables | {name}
    if "errors" in catch:
        errors = c.members(f"{cp}/errors", catch["errors"], "'errors'", {"with"})
        if errors is not None:
            if "with" in errors:
                wp = f"{cp}/errors/with"
                flt = c.members(wp, errors["with"], "'with'", ERROR_FIELDS)
                if flt is not None:
                    if "status" in flt and not isinstance(flt["status"], int):
                        c.add(f"{wp}/status", "'status' must be an integer")
    for key in ("when", "exceptWhen"):
        if key in catch:
            c.expression(f"{cp}/{key}", catch[key], inner)
    if "retry" in catch:
        retry = catch["retry"]
        if isinstance(retry, str):
            if retry not in c.named("retries"):
                c.add(f"{cp}/retry", f"unknown retry policy '{retry}' (not in use.retries)")
        else:
            check_retry(c, f"{cp}/retry", retry, inner)
    if "do" in catch:
        c.task_list(f"{cp}/do", catch["do"], inner)


def check_retry(c: Checker, p: str, value: Any, variables: frozenset[str]) -> None:
    """A retry policy, inline in `catch.retry` or in `use.retries`."""
    retry = c.members(
        p, value, "a retry policy", {"delay", "backoff", "limit", "jitter", "when", "exceptWhen"}
    )
    if retry is None:
        return
    if "delay" in retry:
        c.duration(f"{p}/delay", retry["delay"])
    if "backoff" in retry:
        backoff = c.members(f"{p}/backoff", retry["backoff"], "'backoff'", _BACKOFFS)
        if backoff is not None:
            if len(backoff) != 1:
                c.add(
                    f"{p}/backoff", "'backoff' needs exactly one of constant, linear, exponential"
                )
            for kind, params in backoff.items():
                if kind in _BACKOFFS and params not in (None, {}):
                    c.add(f"{p}/backoff/{kind}", "backoff parameters are not supported; use {}")
    if "limit" in retry:
        _retry_limit(c, f"{p}/limit", retry["limit"])
    if "jitter" in retry:
        jitter = c.members(
            f"{p}/jitter", retry["jitter"], "'jitter'", {"from", "to"}, required=("from", "to")
        )
        if jitter is not None:
            for key in ("from", "to"):
                if key in jitter:
                    c.duration(f"{p}/jitter/{key}", jitter[key])
    for key in ("when", "exceptWhen"):
        if key in retry:
            c.expression(f"{p}/{key}", retry[key], variables | {"error"})


def _retry_limit(c: Checker, p: str, value: Any) -> None:
    limit = c.members(p, value, "'limit'", {"attempt", "duration"})
    if limit is None:
        return
    if "duration" in limit:
        c.duration(f"{p}/duration", limit["duration"])
    if "attempt" in limit:
        attempt = c.members(
            f"{p}/attempt", limit["attempt"], "'attempt'", {"count"}, unsupported={"duration"}
        )
        if attempt is not None:
            count = attempt.get("count")
            if "count" in attempt and (
                not isinstance(count, int) or isinstance(count, bool) or count < 0
            ):
                c.add(f"{p}/attempt/count", "'count' must be a non-negative integer")


async def run_try(rt: Runtime, call: TaskCall) -> StepResult:
    """Run `try`, retrying and catching as configured; progress lives in the frame."""
    catch: Mapping[str, Any] = call.definition["catch"]
    frame = call.frame
    if frame.get("phase") == "catch":
        return await _handle(rt, call, WorkflowError.from_dict(frame["error"]))
    policy = rt.named("retries", catch["retry"]) if "retry" in catch else None
    frame.setdefault("since", time.time())
    while True:
        attempt: int = frame.setdefault("attempt", 1)
        call.attempts = attempt
        scope = replace(call.scope, attempt=attempt)
        seq = frame.setdefault("seq", {"next": 0, "data": call.input})
        try:
            outcome = await run_sequence(rt, f"{call.id}/try", call.definition["try"], seq, scope)
        except WorkflowError as error:
            if not _caught(rt, call, error):
                raise
            delay = _retry_delay(rt, call, policy, error) if policy is not None else None
            if delay is None:
                if policy is not None and "do" not in catch:
                    raise
                return await _handle(rt, call, error)
            # Reset before sleeping: a checkpoint taken meanwhile resumes with the next attempt.
            frame.update(attempt=attempt + 1, seq={"next": 0, "data": call.input})
            await asyncio.sleep(delay)
            call.attempts = attempt + 1
            await rt.report(call, RUNNING)
            continue
        return StepResult(outcome.output, "end" if outcome.ended else None)


def _error_variables(rt: Runtime, call: TaskCall, error: WorkflowError) -> dict[str, Any]:
    name = call.definition["catch"].get("as", "error")
    error_value = error.as_dict()
    return rt.variables(call, call.input, **{"error": error_value, name: error_value})


def _caught(rt: Runtime, call: TaskCall, error: WorkflowError) -> bool:
    """Whether the catch clause's filter and conditions accept ``error``."""
    catch = call.definition["catch"]
    wanted = catch.get("errors", {}).get("with", {})
    actual = error.as_dict()
    if any(actual.get(key) != wanted[key] for key in ERROR_FIELDS if key in wanted):
        return False
    return _conditions(rt, call, error, catch)


def _conditions(
    rt: Runtime, call: TaskCall, error: WorkflowError, block: Mapping[str, Any]
) -> bool:
    variables = _error_variables(rt, call, error)
    if "when" in block and not truthy(rt.field(block["when"], call.input, variables)):
        return False
    return not (
        "exceptWhen" in block and truthy(rt.field(block["exceptWhen"], call.input, variables))
    )


def _retry_delay(
    rt: Runtime, call: TaskCall, policy: Mapping[str, Any], error: WorkflowError
) -> float | None:
    """Seconds to wait before the next attempt, or None when the policy allows no more."""
    retry_number: int = call.frame["attempt"]  # the retry about to happen, 1-based
    limit = policy.get("limit", {})
    count = limit.get("attempt", {}).get("count")
    if count is not None and retry_number > count:
        return None
    if not _conditions(rt, call, error, policy):
        return None
    base = parse_duration(policy["delay"]) if "delay" in policy else 0.0
    backoff = next(iter(policy.get("backoff", {"constant": {}})))
    factor = {"constant": 1, "linear": retry_number, "exponential": 2 ** (retry_number - 1)}
    delay: float = base * factor[str(backoff)]
    if "jitter" in policy:
        low = parse_duration(policy["jitter"]["from"])
        high = parse_duration(policy["jitter"]["to"])
        delay += random.uniform(min(low, high), max(low, high))
    if "duration" in limit:
        elapsed = time.time() - float(call.frame["since"])
        if elapsed + delay > parse_duration(limit["duration"]):
            return None
    return delay


async def _handle(rt: Runtime, call: TaskCall, error: WorkflowError) -> StepResult:
    """Run `catch.do` with the error bound, or swallow the error."""
    catch = call.definition["catch"]
    if "do" not in catch:
        return StepResult(call.input)
    frame = call.frame
    if frame.get("phase") != "catch":
        frame.update(phase="catch", error=error.as_dict(), seq={"next": 0, "data": call.input})
    name = catch.get("as", "error")
    scope = call.scope.with_variables(**{name: frame["error"]})
    outcome = await run_sequence(rt, f"{call.id}/catch/do", catch["do"], frame["seq"], scope)
    return StepResult(outcome.output, "end" if outcome.ended else None)


TRY = TaskType("try", frozenset({"try", "catch"}), _check_try, run_try, composite=True)
