r"""protobuf Struct/Value <-> plain JSON data, with integers kept as integers.

``google.protobuf.Struct`` and ``Value`` store every number as a double, so ``{"petId": 1}``
comes back from ``MessageToDict`` as ``{"petId": 1.0}``: a URL template then calls
``/pet/1.0`` and jq's ``"\(.petId)"`` gives ``"1.0"``. Every place where a Struct or Value
becomes Python or JSON goes through this module, which gives integral numbers back as
``int``. Only numbers a double holds exactly (``|x| <= 2**53``) are converted: past that the
double is already an approximation, and pretending it is an exact integer would invent digits.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct, Value

# The largest magnitude up to which every integer is exactly representable as a double.
MAX_EXACT_INTEGER = 2**53


def plain_numbers(data: Any) -> Any:
    """Return JSON data with integral floats turned into ints, recursively.

    Args:
        data: JSON-compatible data (dicts, lists, strings, numbers, booleans, None).

    Returns:
        The same data; a float such as ``1.0`` becomes ``1`` when ``|x| <= 2**53``.
        Non-integral, huge, infinite and NaN floats are left as they are.

    """
    if isinstance(data, float):
        if data.is_integer() and abs(data) <= MAX_EXACT_INTEGER:
            return int(data)
        return data
    if isinstance(data, dict):
        return {key: plain_numbers(item) for key, item in data.items()}
    if isinstance(data, list):
        return [plain_numbers(item) for item in data]
    return data


def struct_to_dict(struct: Struct) -> dict[str, Any]:
    """Return a Struct as a plain dict, integral numbers as ints.

    Args:
        struct: The Struct; an empty one gives ``{}``.

    Returns:
        The data.

    """
    data: dict[str, Any] = plain_numbers(MessageToDict(struct))
    return data


def value_to_data(value: Value) -> Any:
    """Return a Value as plain JSON data, integral numbers as ints.

    Args:
        value: The Value; an unset one gives ``None``.

    Returns:
        The data.

    """
    return plain_numbers(MessageToDict(value))


def message_to_data(message: Message) -> dict[str, Any]:
    """Return any message in the proto3 JSON mapping, integral numbers as ints.

    Struct and Value fields nested anywhere in the message get integers back; integral
    ``double`` fields print as ``1`` instead of ``1.0``, which the proto3 JSON mapping
    accepts for doubles too.

    Args:
        message: Any protobuf message.

    Returns:
        The message as JSON data (lowerCamelCase field names).

    """
    data: dict[str, Any] = plain_numbers(MessageToDict(message))
    return data


def message_to_json(message: Message, *, indent: int | None = 2) -> str:
    """Serialize a message as proto3 JSON text, integral numbers as ints.

    Args:
        message: Any protobuf message.
        indent: Indentation; None for one compact line.

    Returns:
        The JSON text.

    """
    return json.dumps(message_to_data(message), indent=indent, ensure_ascii=False)
