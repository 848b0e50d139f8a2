"""Services and live state shared by every task of one engine run."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx

from polyfleet.dsl import expressions, state
from polyfleet.dsl.durations import parse_duration
from polyfleet.dsl.errors import EXPRESSION, DslError, WorkflowError
from polyfleet.dsl.expressions import ExpressionError
from polyfleet.dsl.reports import EngineHooks, TaskReport
from polyfleet.redaction import REDACTED, Redactor

logger = logging.getLogger(__name__)

RUNTIME_DESCRIPTOR = {"name": "polyfleet", "version": "1", "metadata": {}}


class HookError(DslError):
    """The host's report or checkpoint hook failed; the run cannot be trusted to continue."""


def datetime_descriptor(moment: datetime) -> dict[str, Any]:
    """The DSL's dateTimeDescriptor of ``moment``."""
    millis = int(moment.timestamp() * 1000)
    return {
        "iso8601": moment.isoformat().replace("+00:00", "Z"),
        "epoch": {"seconds": millis // 1000, "milliseconds": millis},
    }


def truthy(value: Any) -> bool:
    """Truthiness as in jq: everything but false and null."""
    return value is not None and value is not False


@dataclass(frozen=True)
class ProcessLimits:
    """What the host lets `run: shell` / `run: script` do (the runner's settings).

    Attributes:
        allow: the process kinds (`shell`, `script`) that may run; empty: none.
        max_seconds: longest a process runs (a task's shorter `timeout` wins).
        max_output_bytes: largest stdout or stderr a process may write.
        setting: the host's name of ``allow``, named in the error of a refused task.
    """

    allow: frozenset[str] = frozenset()
    max_seconds: float = 600.0
    max_output_bytes: int = 1024 * 1024
    setting: str = "POLYFLEET_RUNNER_ALLOW_RUN"


@dataclass(frozen=True)
class Scope:
    """What enclosing tasks add for the tasks inside them."""

    variables: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 1

    def with_variables(self, **variables: Any) -> Scope:
        """This scope with more `$` variables."""
        return replace(self, variables={**self.variables, **variables})


@dataclass
class TaskCall:
    """One run of one task: identity, definition, input and resumable progress (``frame``)."""

    id: str
    name: str
    kind: str
    definition: Mapping[str, Any]
    scope: Scope
    raw_input: Any
    started: datetime
    input: Any = None
    frame: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False
    attempts: int = 1

    def descriptor(self) -> dict[str, Any]:
        """The `$task` variable."""
        return {
            "name": self.name,
            "reference": self.id,
            "definition": self.definition,
            "input": self.raw_input,
            "startedAt": datetime_descriptor(self.started),
        }


class Runtime:
    """Hooks, HTTP client, `$` variables, secrets redaction and the checkpointed state."""

    def __init__(
        self,
        doc: Mapping[str, Any],
        hooks: EngineHooks,
        http: httpx.AsyncClient,
        env: Mapping[str, str],
        secrets: Mapping[str, str],
        redact: Iterable[str] = (),
    ) -> None:
        self.doc = doc
        self.hooks = hooks
        self.http = http
        self.env = dict(env)
        self.secrets = dict(secrets)
        self.redactor = Redactor([*self.secrets.values(), *redact])
        self.document_id = state.fingerprint(doc)
        self.context: Any = {}
        self.frames: dict[str, dict[str, Any]] = {}
        self.resume_frames: dict[str, dict[str, Any]] = {}
        # Insertion-ordered: the last entry is the most recently started running task.
        self.running: dict[str, None] = {}
        # Set when the workflow-level timeout fires, so interrupted tasks report it.
        self.abort_error: WorkflowError | None = None
        self.workflow: dict[str, Any] = {"definition": doc, "input": None}
        # What `run: shell|script` may do; the Engine sets the host's.
        self.processes = ProcessLimits()
        # Catalog and URL functions, by reference, as the host resolved them.
        self.resolved_functions: Mapping[str, Any] = {}
        self._checkpoint_lock = asyncio.Lock()

    # -- expressions ----------------------------------------------------------------

    def variables(self, call: TaskCall | None, task_input: Any, **extra: Any) -> dict[str, Any]:
        """The `$` variables of an expression evaluated for ``call``."""
        variables: dict[str, Any] = {
            "input": task_input,
            "context": self.context,
            "env": self.env,
            "secrets": self.secrets,
            "workflow": self.workflow,
            "runtime": RUNTIME_DESCRIPTOR,
        }
        if call is not None:
            variables["task"] = call.descriptor()
            variables.update(call.scope.variables)
        variables.update(extra)
        return variables

    def field(self, value: Any, data: Any, variables: Mapping[str, Any]) -> Any:
        """Evaluate an expression-typed field; failures become expression WorkflowErrors."""
        try:
            return expressions.evaluate_field(value, data, variables)
        except ExpressionError as exc:
            raise _expression_error(exc) from None

    def template(self, value: Any, data: Any, variables: Mapping[str, Any]) -> Any:
        """Evaluate the `${ }` strings in ``value``; failures become expression WorkflowErrors."""
        try:
            return expressions.evaluate_template(value, data, variables)
        except ExpressionError as exc:
            raise _expression_error(exc) from None

    def named(self, kind: str, value: Any) -> Any:
        """Resolve a reference to `use.<kind>` (validated to exist); other values pass through."""
        if isinstance(value, str):
            return self.doc["use"][kind][value]
        return value

    def timeout_seconds(self, value: Any) -> float | None:
        """Seconds of a `timeout` property (inline or named), None when absent."""
        if value is None:
            return None
        return parse_duration(self.named("timeouts", value)["after"])

    # -- reporting ------------------------------------------------------------------

    async def report(
        self,
        call: TaskCall,
        phase: str,
        *,
        output: Any = None,
        error: WorkflowError | None = None,
        ended: bool = False,
    ) -> None:
        """Send one task report, with secret values removed."""
        shown_input = call.input
        input_from = call.definition.get("input")
        if isinstance(input_from, Mapping) and expressions.mentions(input_from, "secrets"):
            shown_input = REDACTED
        report = TaskReport(
            id=call.id,
            name=call.name,
            type=call.kind,
            phase=phase,
            input=self.redactor.data(shown_input),
            output=self.redactor.data(output),
            error=self.redact_error(error) if error is not None else None,
            attempts=call.attempts,
            start_time=call.started,
            end_time=datetime.now(UTC) if ended else None,
        )
        try:
            await self.hooks.report(report)
        except Exception as exc:
            raise HookError(f"the report hook failed: {exc}") from exc

    def redact_error(self, error: WorkflowError) -> WorkflowError:
        """``error`` with secret values removed from its texts."""
        if not self.redactor:
            return error
        text = self.redactor.text
        return WorkflowError(
            text(error.type),
            error.status,
            text(error.title),
            text(error.detail),
            text(error.instance),
        )

    async def checkpoint(self) -> None:
        """Hand the host a snapshot of the resumable state (serialized, one at a time)."""
        async with self._checkpoint_lock:
            snapshot = state.snapshot(self.document_id, self.context, self.frames)
            try:
                await self.hooks.checkpoint(self.redactor.data(snapshot))
            except Exception as exc:
                raise HookError(f"the checkpoint hook failed: {exc}") from exc


def _expression_error(exc: ExpressionError) -> WorkflowError:
    return WorkflowError(
        EXPRESSION,
        400,
        title="Expression evaluation failed",
        detail=f"{exc.message} in `{exc.expression}`",
    )
