"""The one duration parser of settings and manifests."""

from __future__ import annotations

from datetime import timedelta

import pytest

from polyfleet.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (30, 30),
        (1.5, 1.5),
        ("30", 30),
        ("2.5", 2.5),
        ("30s", 30),
        ("500ms", 0.5),
        ("2m", 120),
        ("1h30m", 5400),
        ("2h", 7200),
        ("PT30S", 30),
        ("pt1m30s", 90),
        ("PT0.5S", 0.5),
        ("P1D", 86400),
        ("P1W", 7 * 86400),
        ("P1DT2H", 93600),
        (timedelta(seconds=3), 3),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text", ["thirty", "30 s", "-5s", -5, "P", "PT", "P1Y", "1d", "", True, None]
)
def test_invalid_durations(text: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(milliseconds=100), "100ms"),
        (timedelta(seconds=30), "30s"),
        (timedelta(minutes=1, seconds=30), "1m30s"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=1), "24h"),
    ],
)
def test_format_is_read_back(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value
