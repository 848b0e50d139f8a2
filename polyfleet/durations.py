"""Durations as people write them, the one parser of settings and manifests.

A duration is a number of seconds (``30``, ``1.5``), units (``30s``, ``2m``, ``1h30m``,
``500ms``) or ISO 8601 (``PT30S``, ``P1DT2H``). Settings read it from environment variables
(:mod:`polyfleet.config`) and manifests from YAML (:mod:`polyfleet.manifest`), so an
operator writes ``30s`` the same way in both.
"""

from __future__ import annotations

import re
from datetime import timedelta

_NUMBER = r"\d+(?:\.\d+)?"
# Weeks, days and a time part. Years and months have no fixed length, so they are refused
# rather than guessed; "P" and "PT" alone are no duration.
_ISO_RE = re.compile(
    rf"P(?!$)(?:(?P<weeks>{_NUMBER})W)?(?:(?P<days>{_NUMBER})D)?"
    rf"(?:T(?=\d)(?:(?P<hours>{_NUMBER})H)?(?:(?P<minutes>{_NUMBER})M)?"
    rf"(?:(?P<seconds>{_NUMBER})S)?)?",
    re.IGNORECASE,
)
_UNITS_RE = re.compile(rf"(?:{_NUMBER}(?:ms|h|m|s))+")
_UNIT_PART_RE = re.compile(rf"({_NUMBER})(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

FORMS = "seconds (30), units (30s, 2m, 1h30m, 500ms) or ISO 8601 (PT30S)"
"""The accepted forms, for error messages and documentation."""


def parse_duration(value: object) -> timedelta:
    """Read a duration.

    Args:
        value: A :class:`~datetime.timedelta`, seconds as a number (``30``, ``1.5``) or
            string (``"30"``), units (``30s``, ``2m``, ``1h30m``, ``500ms``) or ISO 8601
            (``PT30S``, ``pt1m30s``, ``P1DT2H``).

    Returns:
        The duration.

    Raises:
        ValueError: The value is none of those forms (negative values included).

    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(_NUMBER, text):
            return timedelta(seconds=float(text))
        if _UNITS_RE.fullmatch(text):
            return timedelta(
                seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _UNIT_PART_RE.findall(text))
            )
        iso = parse_iso8601(text)
        if iso is not None:
            return iso
    raise ValueError(f"invalid duration {value!r}: use {FORMS}")


def parse_iso8601(text: str) -> timedelta | None:
    """Read an ISO 8601 duration of weeks, days, hours, minutes and seconds (``PT1.5S``).

    The one reading of ISO 8601 durations: settings and manifests accept it beside their
    other forms, and workflow documents (:mod:`polyfleet.dsl`) accept only it, as the
    Serverless Workflow specification says.

    Args:
        text: The duration, case-insensitive.

    Returns:
        The duration, or None when ``text`` is not such a duration (years and months have
        no fixed length and are not).

    """
    iso = _ISO_RE.fullmatch(text.strip())
    if iso is None:
        return None
    return timedelta(**{k: float(v) for k, v in iso.groupdict().items() if v})


def format_duration(value: timedelta) -> str:
    """Write a duration in the units form :func:`parse_duration` reads back (``1h30m``).

    Args:
        value: A non-negative duration.

    Returns:
        Hours, minutes, seconds and milliseconds, largest first, e.g. ``1m30s``, ``100ms``;
        ``0s`` for zero.

    """
    millis = round(value.total_seconds() * 1000)
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        amount, millis = divmod(millis, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"
