"""CloudEvents 1.0 as plain JSON data ⇄ ``polyfleet.v1.CloudEvent``.

The DSL's `emit`/`listen`, the runner and the CLI see an event as one flat object: the
context attributes (`id`, `source`, `type`, `specversion`, `time` as RFC 3339 text,
`subject`, `datacontenttype`, `dataschema`), the extension attributes (strings) and `data`
(any JSON value), like the CloudEvents JSON format.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format, struct_pb2

from polyfleet.structs import value_to_data
from polyfleet.v1 import event_pb2

#: The context attributes with a field of their own (`time` and `data` apart).
ATTRIBUTES = ("id", "source", "type", "specversion", "subject", "datacontenttype", "dataschema")


class EventFormatError(ValueError):
    """An event's attribute cannot be represented; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def event_from_data(data: Mapping[str, Any]) -> event_pb2.CloudEvent:
    """The message of a flat event object.

    Raises:
        EventFormatError: An attribute is not a string, or `time` is not RFC 3339.

    """
    event = event_pb2.CloudEvent()
    for key, value in data.items():
        if key == "data":
            if value is not None:
                event.data.CopyFrom(json_format.ParseDict(value, struct_pb2.Value()))
            continue
        if not isinstance(value, str):
            raise EventFormatError(key, f"must be a string, not {type(value).__name__}")
        if key == "time":
            try:
                event.time.FromJsonString(value)
            except ValueError:
                raise EventFormatError("time", f"{value!r} is not an RFC 3339 time") from None
        elif key in ATTRIBUTES:
            setattr(event, key, value)
        else:
            event.extensions[key] = value
    return event


def event_to_data(event: event_pb2.CloudEvent) -> dict[str, Any]:
    """The flat object of an event: attributes that are set, extensions, then `data`."""
    data: dict[str, Any] = {key: getattr(event, key) for key in ATTRIBUTES if getattr(event, key)}
    if event.HasField("time"):
        data["time"] = event.time.ToJsonString()
    data.update(event.extensions)
    if event.HasField("data"):
        data["data"] = value_to_data(event.data)
    return data
