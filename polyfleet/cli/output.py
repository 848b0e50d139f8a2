"""Plain formatting helpers shared by the CLI commands: names, tables, JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import TextIO

from google.protobuf.message import Message as ProtoMessage
from google.protobuf.struct_pb2 import Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

from polyfleet.contract import PHASE_NAME_PREFIX
from polyfleet.structs import message_to_json, struct_to_dict, value_to_data
from polyfleet.v1 import common_pb2

# Long tool results would drown the live transcript; the full value stays in `get -o json`.
_MAX_INLINE_CHARS = 200


@dataclass(frozen=True)
class Console:
    """Where a command writes: results to ``out``, diagnostics to ``err``."""

    out: TextIO
    err: TextIO


def phase_choices() -> list[str]:
    """Return the phase names a user may filter on, e.g. ``["PENDING", "RUNNING", ...]``."""
    return [
        name.removeprefix(PHASE_NAME_PREFIX)
        for name in common_pb2.ExecutionPhase.keys()
        if name != "EXECUTION_PHASE_UNSPECIFIED"
    ]


def parse_phase(text: str) -> common_pb2.ExecutionPhase.ValueType:
    """Parse a phase name given on the command line.

    Args:
        text: ``running``, ``RUNNING`` or ``EXECUTION_PHASE_RUNNING``.

    Returns:
        The ExecutionPhase value.

    Raises:
        ValueError: The name is not a known phase.

    """
    name = text.strip().upper().removeprefix(PHASE_NAME_PREFIX)
    if name not in phase_choices():
        raise ValueError(f"unknown phase {text!r} (choose from {', '.join(phase_choices())})")
    return common_pb2.ExecutionPhase.Value(PHASE_NAME_PREFIX + name)


def role_name(role: common_pb2.MessageRole.ValueType) -> str:
    """Return a message role as a lowercase word, e.g. ``assistant``.

    Args:
        role: A MessageRole value.

    Returns:
        The role without the ``MESSAGE_ROLE_`` prefix, lowercased; ``message`` if unset.

    """
    if role == common_pb2.MESSAGE_ROLE_UNSPECIFIED:
        return "message"
    try:
        return common_pb2.MessageRole.Name(role).removeprefix("MESSAGE_ROLE_").lower()
    except ValueError:
        return "message"


def format_timestamp(timestamp: Timestamp) -> str:
    """Format a protobuf timestamp as UTC ISO-8601 to the second.

    Args:
        timestamp: The timestamp; all-zero means unset.

    Returns:
        For example ``2025-01-31T12:00:00Z``, or ``-`` when unset.

    """
    if timestamp.seconds == 0 and timestamp.nanos == 0:
        return "-"
    moment = timestamp.ToDatetime(tzinfo=UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def shorten(text: str, limit: int = _MAX_INLINE_CHARS) -> str:
    """Cut text to ``limit`` characters on one line, marking the cut with an ellipsis.

    Args:
        text: Any text.
        limit: Maximum length of the result.

    Returns:
        The text with newlines collapsed, shortened if needed.

    """
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def format_tool_call(call: common_pb2.ToolCall) -> str:
    """Render a tool call as ``tool name(arg=value) -> result``.

    Args:
        call: The tool call.

    Returns:
        One line; a running call ends in ``...``, a failed one in ``-> error: ...``, one
        left unfinished when its execution ended in ``-> cancelled``.

    """
    arguments = struct_to_dict(call.arguments) if call.HasField("arguments") else {}
    # Struct is a map without a stable order; sorted keys keep the transcript reproducible.
    rendered = ", ".join(f"{key}={json.dumps(value)}" for key, value in sorted(arguments.items()))
    head = f"tool {call.name}({shorten(rendered)})"
    if call.status == common_pb2.TOOL_CALL_STATUS_CANCELLED:
        return f"{head} -> cancelled"
    if call.error or call.status == common_pb2.TOOL_CALL_STATUS_FAILED:
        return f"{head} -> error: {shorten(call.error or 'failed')}"
    if call.result or call.status == common_pb2.TOOL_CALL_STATUS_SUCCEEDED:
        return f"{head} -> {shorten(call.result)}"
    return f"{head} ..."


def format_arguments(call: common_pb2.ToolCall) -> str:
    """Render a tool call's arguments as compact JSON, e.g. ``{"city": "Paris"}``.

    Args:
        call: The tool call.

    Returns:
        JSON with sorted keys, shortened to one line; ``{}`` when there are none.

    """
    arguments = struct_to_dict(call.arguments) if call.HasField("arguments") else {}
    return shorten(json.dumps(arguments, ensure_ascii=False, sort_keys=True))


def format_usage(usage: common_pb2.Usage) -> str:
    """Render token usage, e.g. ``46 tokens (12 in, 34 out), 2 model calls, cost 0.0001 USD``.

    Args:
        usage: Usage totals of an execution.

    Returns:
        One line; the cost is left out when it is zero (no pricing configured).

    """
    total = usage.total_tokens or usage.input_tokens + usage.output_tokens
    text = f"{total} tokens ({usage.input_tokens} in, {usage.output_tokens} out)"
    if usage.model_calls:
        text += f", {usage.model_calls} model call{'' if usage.model_calls == 1 else 's'}"
    if usage.cost:
        # Fixed-point: per-call costs are often fractions of a cent; never an exponent.
        cost = f"{usage.cost:.8f}".rstrip("0").rstrip(".")
        text += f", cost {cost} {usage.currency or 'USD'}"
    return text


def has_usage(usage: common_pb2.Usage) -> bool:
    """Tell whether usage holds anything worth showing.

    Args:
        usage: Usage totals.

    Returns:
        True when any token count, model call or cost is non-zero.

    """
    return bool(
        usage.input_tokens
        or usage.output_tokens
        or usage.total_tokens
        or usage.model_calls
        or usage.cost
    )


def struct_json(struct: Struct) -> str:
    """Render a protobuf Struct (e.g. a structured output) as compact JSON.

    Args:
        struct: The value.

    Returns:
        One line of JSON with sorted keys, integral numbers without ``.0``.

    """
    # Struct is a map without a stable order; sorted keys keep the output reproducible.
    return json.dumps(struct_to_dict(struct), ensure_ascii=False, sort_keys=True)


def json_of_value(value: Value) -> object:
    """Return a protobuf Value (e.g. a workflow's output) as plain JSON data.

    Args:
        value: The value; an unset one is ``null``.

    Returns:
        The data, integral numbers as integers.

    """
    return value_to_data(value)


def value_json(value: Value, *, indent: int | None = None) -> str:
    """Render a protobuf Value as JSON with sorted keys.

    Args:
        value: The value; an unset one is ``null``.
        indent: Indentation for multi-line output; None for one compact line.

    Returns:
        The JSON text, integral numbers without ``.0``.

    """
    return json.dumps(json_of_value(value), ensure_ascii=False, sort_keys=True, indent=indent)


def format_error(error: common_pb2.ExecutionError) -> str:
    """Render an execution error as ``Type: message``, naming the step when known.

    Args:
        error: The error.

    Returns:
        One line of text.

    """
    text = f"{error.type or 'Error'}: {error.message or 'no details'}"
    return f"{text} (step {error.step})" if error.step else text


def to_json(message: ProtoMessage) -> str:
    """Serialize a message as proto3 JSON, the same mapping every gRPC gateway uses.

    Args:
        message: Any protobuf message.

    Returns:
        Indented JSON text; integral numbers (Struct/Value hold them as doubles) print as
        integers, e.g. ``"petId": 1``, not ``1.0``.

    """
    return message_to_json(message)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Lay out rows in left-aligned columns, kubectl style.

    Args:
        headers: Column titles.
        rows: Cell texts, one sequence per row, as long as ``headers``.

    Returns:
        The table without a trailing newline.

    """
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [list(headers), *rows]
    ]
    return "\n".join(lines)
