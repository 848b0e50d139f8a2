"""DSL durations: ISO 8601 strings (`PT1S`) or objects (`{seconds: 1, milliseconds: 500}`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polyfleet.durations import parse_iso8601

_UNITS = {"days": 86400.0, "hours": 3600.0, "minutes": 60.0, "seconds": 1.0, "milliseconds": 0.001}


class DurationError(ValueError):
    """A value is not a duration the runtime understands."""


def parse_duration(value: Any) -> float:
    """Seconds in a DSL duration.

    Args:
        value: an ISO 8601 duration string (`PT1.5S`, `P1DT2H`, `PT5M`) or a mapping of
            `days`, `hours`, `minutes`, `seconds`, `milliseconds`.

    Returns:
        The duration in seconds.

    Raises:
        DurationError: the value is not a supported duration.
    """
    if isinstance(value, str):
        parsed = parse_iso8601(value)
        if parsed is None:
            raise DurationError(
                f"{value!r} is not a supported ISO 8601 duration "
                "(use weeks, days, hours, minutes and seconds, e.g. PT1S or P1DT2H)"
            )
        return parsed.total_seconds()
    if isinstance(value, Mapping):
        if not value:
            raise DurationError("a duration object needs at least one of " + ", ".join(_UNITS))
        total = 0.0
        for key, amount in value.items():
            if key not in _UNITS:
                raise DurationError(f"unknown duration unit {key!r}; use " + ", ".join(_UNITS))
            if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
                raise DurationError(f"duration {key} must be a non-negative number")
            total += _UNITS[key] * amount
        return total
    raise DurationError("a duration must be an ISO 8601 string or an object such as {seconds: 1}")
