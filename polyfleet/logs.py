"""Process-wide logging setup: execution, workflow and run IDs on every line that has them."""

from __future__ import annotations

import logging

from polyfleet.config import LogSettings

_IDS = ("execution_id", "workflow_id", "run_id")


class _IdsFilter(logging.Filter):
    """Appends the IDs a record carries (``extra={...}``) to its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = [f"{key}={getattr(record, key)}" for key in _IDS if getattr(record, key, None)]
        record.ids = (" " + " ".join(ids)) if ids else ""
        return True


def configure_logging(level: str | None = None) -> None:
    """Log to stderr at ``level``, else at :class:`~polyfleet.config.LogSettings`' level.

    Raises:
        ConfigError: ``POLYFLEET_LOG_LEVEL`` is no logging level.

    """
    handler = logging.StreamHandler()
    handler.addFilter(_IdsFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s%(ids)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or LogSettings().log_level)
