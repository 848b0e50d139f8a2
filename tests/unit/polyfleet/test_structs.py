"""Struct/Value -> plain data: integral numbers come back as integers."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from google.protobuf.struct_pb2 import Struct, Value

from polyfleet.structs import (
    MAX_EXACT_INTEGER,
    message_to_data,
    message_to_json,
    plain_numbers,
    struct_to_dict,
    value_to_data,
)
from polyfleet.v1 import common_pb2


def _struct(data: dict[str, Any]) -> Struct:
    struct = Struct()
    struct.update(data)
    return struct


def test_integral_numbers_come_back_as_ints_at_any_depth() -> None:
    data = struct_to_dict(_struct({"petId": 1, "nested": {"n": [2, 3.5, {"m": -4}]}}))

    assert data == {"petId": 1, "nested": {"n": [2, 3.5, {"m": -4}]}}
    assert type(data["petId"]) is int
    assert [type(x) for x in data["nested"]["n"][:2]] == [int, float]
    assert type(data["nested"]["n"][2]["m"]) is int


@pytest.mark.parametrize(
    ("number", "expected_type"),
    [
        (float(MAX_EXACT_INTEGER), int),
        (float(-MAX_EXACT_INTEGER), int),
        # Past 2**53 a double no longer holds every integer: it stays a float.
        (float(MAX_EXACT_INTEGER * 4), float),
        (0.5, float),
        (math.inf, float),
    ],
)
def test_only_exactly_representable_integers_are_converted(
    number: float, expected_type: type
) -> None:
    assert type(plain_numbers(number)) is expected_type


def test_other_values_pass_through() -> None:
    assert plain_numbers(["a", True, None, 0.0]) == ["a", True, None, 0]
    assert plain_numbers(True) is True  # a bool is not a number to convert


def test_value_to_data() -> None:
    assert value_to_data(Value(number_value=7)) == 7
    assert type(value_to_data(Value(number_value=7))) is int
    assert value_to_data(Value()) is None


def test_message_json_shows_integers_inside_structs() -> None:
    call = common_pb2.ToolCall(id="c1", name="add", arguments=_struct({"a": 2, "b": 2.5}))

    text = message_to_json(call)

    assert '"a": 2' in text and "2.0" not in text
    assert json.loads(text)["arguments"] == {"a": 2, "b": 2.5}
    assert message_to_data(call)["name"] == "add"
