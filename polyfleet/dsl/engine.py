"""The engine: runs one workflow document once, reporting, checkpointing and resuming."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import httpx

from polyfleet.dsl import tasks  # noqa: F401 - registers the task types
from polyfleet.dsl.errors import (
    CONFIGURATION,
    TIMEOUT,
    DslError,
    InvalidDocumentError,
    WorkflowError,
)
from polyfleet.dsl.flow import check_schema, run_sequence
from polyfleet.dsl.reports import EngineHooks
from polyfleet.dsl.runtime import ProcessLimits, Runtime, Scope, datetime_descriptor
from polyfleet.dsl.state import restore
from polyfleet.dsl.validation import validate_document

logger = logging.getLogger(__name__)

_EMPTY: Mapping[str, str] = MappingProxyType({})
_ROOT = ""


class Engine:
    """Runs a validated workflow document.

    Args:
        doc: the document; it is validated here (InvalidDocumentError if it cannot run).
        hooks: receives task reports and checkpoints, and runs `call: agent`.
        http: the client `call: http` uses; its timeouts and limits apply.
        env: the allow-listed environment, visible to expressions as `$env`.
        secrets: secret values; those named in `use.secrets` are `$secrets`, and no
            value of any of them ever appears in reports, checkpoints or raised errors.
        resume: a state passed to ``hooks.checkpoint`` by an earlier run of the same
            document; the run continues after the last completed task.
        processes: what `run: shell` / `run: script` may do; by default neither runs.
        functions: the definitions of the catalog and URL functions the document calls,
            by reference, as resolved when the workflow was applied; one it calls that is
            not here is a problem of the document.
    """

    def __init__(
        self,
        doc: Mapping[str, Any],
        hooks: EngineHooks,
        *,
        http: httpx.AsyncClient,
        env: Mapping[str, str] = _EMPTY,
        secrets: Mapping[str, str] = _EMPTY,
        resume: dict[str, Any] | None = None,
        processes: ProcessLimits | None = None,
        functions: Mapping[str, Any] | None = None,
    ) -> None:
        resolved = dict(functions or {})
        problems = validate_document(doc, resolved_functions=resolved)
        if problems:
            raise InvalidDocumentError(problems)
        self._doc = doc
        declared: list[str] = list(doc.get("use", {}).get("secrets", []))
        self._missing_secrets = [name for name in declared if name not in secrets]
        visible = {name: secrets[name] for name in declared if name in secrets}
        # Redact every secret the host handed over, not only the declared ones.
        self._rt = Runtime(doc, hooks, http, env, visible, redact=secrets.values())
        if processes is not None:
            self._rt.processes = processes
        self._rt.resolved_functions = resolved
        if resume is not None:
            self._rt.context, self._rt.resume_frames = restore(resume, self._rt.document_id)
        self._started = False

    async def run(self, workflow_input: Any) -> Any:
        """Run the workflow to its end.

        Args:
            workflow_input: the raw workflow input (the same one again when resuming).

        Returns:
            The workflow output (after the top-level `output.as`), secret values redacted.

        Raises:
            WorkflowError: an uncaught error, a failed task, or a timeout (`instance`
                names the task); secret values are removed from it.
            DslError: the engine was already run, a checkpoint does not fit, or a hook failed.
            asyncio.CancelledError: the run was cancelled; running tasks were interrupted
                (HTTP requests aborted, timers and agent calls cancelled) and reported first.
        """
        if self._started:
            raise DslError("an Engine runs once; create a new one to run again")
        self._started = True
        if self._missing_secrets:
            raise WorkflowError(
                CONFIGURATION,
                400,
                title="Missing secrets",
                detail="secrets declared in use.secrets are not available: "
                + ", ".join(self._missing_secrets),
            )
        seconds = self._rt.timeout_seconds(self._doc.get("timeout"))
        body = asyncio.ensure_future(self._execute(workflow_input))
        try:
            finished, _ = await asyncio.wait({body}, timeout=seconds)
        except asyncio.CancelledError:
            await _settle(body)
            raise
        if not finished:
            self._rt.abort_error = self._timeout_error(seconds or 0.0)
            await _settle(body)
            raise self._rt.redact_error(self._rt.abort_error)
        try:
            # The host stores the output in the execution's status: no secret values.
            return self._rt.redactor.data(body.result())
        except WorkflowError as exc:
            raise self._rt.redact_error(exc) from None

    async def _execute(self, raw_input: Any) -> Any:
        rt, doc = self._rt, self._doc
        rt.workflow = {
            "definition": doc,
            "input": raw_input,
            "startedAt": datetime_descriptor(datetime.now(UTC)),
        }
        frame = rt.resume_frames.pop(_ROOT, None)
        if frame is None:
            variables = rt.variables(None, raw_input)
            try:
                check_schema(doc.get("input"), raw_input, "workflow input")
                transformed = raw_input
                if isinstance(doc.get("input"), Mapping) and "from" in doc["input"]:
                    transformed = rt.field(doc["input"]["from"], raw_input, variables)
            except WorkflowError as exc:
                raise exc.located("/input") from None
            frame = {"input": transformed, "seq": {"next": 0, "data": transformed}}
        rt.frames[_ROOT] = frame
        outcome = await run_sequence(rt, "/do", doc["do"], frame["seq"], Scope())
        output = outcome.output
        try:
            if isinstance(doc.get("output"), Mapping) and "as" in doc["output"]:
                variables = rt.variables(None, frame["input"])
                output = rt.field(doc["output"]["as"], output, variables)
            check_schema(doc.get("output"), output, "workflow output")
        except WorkflowError as exc:
            raise exc.located("/output") from None
        return output

    def _timeout_error(self, seconds: float) -> WorkflowError:
        running = list(self._rt.running)
        task = running[-1] if running else ""
        where = f" while task {task} was running" if task else ""
        return WorkflowError(
            TIMEOUT,
            408,
            title="Workflow timed out",
            detail=f"the workflow did not finish within {seconds:g}s{where}",
            instance=task,
        )


async def _settle(body: asyncio.Future[Any]) -> None:
    """Cancel the run and wait until every task has reported its interruption."""
    body.cancel()
    await asyncio.wait({body})
    if not body.cancelled() and body.exception() is not None:
        logger.debug("workflow body ended with %r after cancellation", body.exception())
