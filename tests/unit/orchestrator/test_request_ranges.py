"""Timestamps, durations and sequences out of range: INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from orchestrator.errors import InvalidArgumentError
from orchestrator.validation import duration_seconds, timestamp_nanos


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (Timestamp(seconds=253_402_300_800), "created_after.seconds"),
        (Timestamp(seconds=-62_135_596_801), "created_after.seconds"),
        (Timestamp(nanos=1_000_000_000), "created_after.nanos"),
        (Timestamp(nanos=-1), "created_after.nanos"),
    ],
)
def test_timestamps_outside_protobufs_range_name_the_part(value: Timestamp, field: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        timestamp_nanos(value, "created_after")
    assert caught.value.field == field


def test_timestamps_in_range_convert_exactly() -> None:
    assert timestamp_nanos(Timestamp(seconds=2, nanos=5), "t") == 2_000_000_005
    assert timestamp_nanos(Timestamp(seconds=253_402_300_799, nanos=999_999_999), "t") > 0


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (Duration(seconds=2**62), "timeout.seconds"),
        (Duration(seconds=-(2**62)), "timeout.seconds"),
        (Duration(nanos=1_000_000_000), "timeout.nanos"),
        (Duration(seconds=1, nanos=-1), "timeout.nanos"),
    ],
)
def test_durations_outside_protobufs_range_name_the_part(value: Duration, field: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        duration_seconds(value, "timeout")
    assert caught.value.field == field


def test_durations_in_range_convert() -> None:
    assert duration_seconds(Duration(seconds=1, nanos=500_000_000), "t") == 1.5
    assert duration_seconds(Duration(seconds=-3), "t") == -3
