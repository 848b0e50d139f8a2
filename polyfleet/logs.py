"""Process-wide logging setup: text or JSON lines, with execution, run and trace IDs.

``POLYFLEET_LOG_FORMAT=text`` (the default) writes one readable line per record with the
execution, workflow and run IDs appended; ``json`` writes one JSON object per line (fields in
docs/observability.md, "Logs"). Either way nothing is coloured: Temporal core's (Rust) log
lines are forwarded into the ``temporalio.core`` logger (:func:`temporal_core_logging`)
instead of being written to the console by Rust with ANSI colours.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from temporalio import activity
from temporalio.runtime import LogForwardingConfig, LoggingConfig, TelemetryFilter

from polyfleet.config import LogSettings

_IDS = ("execution_id", "workflow_id", "run_id")
CORE_LOGGER = "temporalio.core"
"""The logger Temporal core's own log lines are forwarded to."""

# Python level -> Temporal core's filter level (core has no CRITICAL).
_CORE_LEVELS = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARN",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "ERROR",
}


def record_ids(record: logging.LogRecord) -> dict[str, str]:
    """The execution, workflow and run IDs of ``record``.

    From its ``extra`` first (``execution_id``, ``workflow_id``, ``run_id``), then from
    temporalio's loggers' ``temporal_activity`` / ``temporal_workflow`` extras, then from the
    activity the logging code runs in (a context variable: cheap).
    """
    ids = {key: str(value) for key in _IDS if (value := getattr(record, key, None))}
    if "workflow_id" in ids and "run_id" in ids:
        return ids
    details = getattr(record, "temporal_activity", None) or getattr(
        record, "temporal_workflow", None
    )
    if not isinstance(details, dict):
        details = None
        if activity.in_activity():
            info = activity.info()
            details = {"workflow_id": info.workflow_id, "run_id": info.workflow_run_id}
    if details:
        run_id = details.get("run_id") or details.get("workflow_run_id")
        for key, value in (("workflow_id", details.get("workflow_id")), ("run_id", run_id)):
            if value and key not in ids:
                ids[key] = str(value)
    return ids


def trace_ids() -> dict[str, str]:
    """``trace_id`` and ``span_id`` (hex) of the current OpenTelemetry span; none: empty."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {
        "trace_id": trace.format_trace_id(context.trace_id),
        "span_id": trace.format_span_id(context.span_id),
    }


class _IdsFilter(logging.Filter):
    """Appends the IDs a record carries (``extra={...}``) to its message (text format)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = [f"{key}={getattr(record, key)}" for key in _IDS if getattr(record, key, None)]
        record.ids = (" " + " ".join(ids)) if ids else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (control characters escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as ``{"time", "level", "logger", "message", IDs..., "exc_info"}``."""
        created = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(record_ids(record))
        entry.update(trace_ids())
        core = getattr(record, "temporal_log", None)
        if core is not None:  # a forwarded Temporal core line: its target and fields
            entry["target"] = str(getattr(core, "target", ""))
            fields = getattr(core, "fields", None)
            if fields:
                entry["fields"] = fields
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str | None = None, log_format: str | None = None) -> None:
    """Log to stderr at ``level`` in ``log_format``, else as :class:`LogSettings` say.

    Raises:
        ConfigError: ``POLYFLEET_LOG_LEVEL`` or ``POLYFLEET_LOG_FORMAT`` is invalid.

    """
    settings = LogSettings() if level is None or log_format is None else None
    handler = logging.StreamHandler()
    if (log_format or (settings.log_format if settings else "text")) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.addFilter(_IdsFilter())
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s%(ids)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or (settings.log_level if settings else "INFO"))


def temporal_core_logging() -> LoggingConfig:
    """Temporal core's logging: forwarded into :data:`CORE_LOGGER` at the root logger's level.

    For the Runtime (:func:`polyfleet.temporal.runtime`); build it after
    :func:`configure_logging`, whose level it reads.
    """
    level = logging.getLogger(CORE_LOGGER).getEffectiveLevel()
    core_level = next(
        (name for value, name in sorted(_CORE_LEVELS.items()) if value >= level), "ERROR"
    )
    # The JSON format carries the core's target and fields as fields of their own.
    json_lines = any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)
    return LoggingConfig(
        filter=TelemetryFilter(core_level=core_level, other_level="ERROR"),
        forwarding=LogForwardingConfig(
            logger=logging.getLogger(CORE_LOGGER),
            append_target_to_name=False,
            prepend_target_on_message=not json_lines,
            append_log_fields_to_message=not json_lines,
        ),
    )
