"""Structured output: the final answer as JSON that conforms to the agent's schema.

The model is told the schema in its instructions and answers with a JSON object; the
runner parses and validates it. This works the same for every provider, the scripted
one included, and keeps the streamed answer and ``output_text`` identical to what the
model said.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
from google.protobuf.struct_pb2 import Struct

from polyfleet.structs import struct_to_dict
from runner.graphton.errors import StructuredOutputError

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def schema_instructions(schema: Struct) -> str:
    """What the model is told about the output schema (appended to its instructions)."""
    return (
        "When you give your final answer, reply with only a JSON object, no prose and no "
        "code fence, that conforms to this JSON Schema:\n"
        + json.dumps(struct_to_dict(schema), sort_keys=True)
    )


def _parse(text: str) -> Any:
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1)
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        # Models sometimes wrap the object in a sentence; take the outermost braces.
        start, end = stripped.find("{"), stripped.rfind("}")
        if 0 <= start < end:
            try:
                return json.loads(stripped[start : end + 1])
            except json.JSONDecodeError:
                pass
    raise StructuredOutputError(
        f"the final answer is not JSON, but the agent has an output_schema: {text[:200]!r}"
    )


def structured_output(text: str, schema: Struct) -> Struct:
    """Parse and validate the final answer against ``schema``.

    A non-object result is wrapped as ``{"value": result}``, since a Struct is an object.

    Raises:
        StructuredOutputError: Not JSON, or not valid against the schema.

    """
    value = _parse(text)
    schema_dict = struct_to_dict(schema)
    try:
        jsonschema.validate(value, schema_dict)
    except jsonschema.SchemaError as err:
        raise StructuredOutputError(
            f"the agent's output_schema is not a valid JSON Schema: {err.message}"
        ) from None
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        raise StructuredOutputError(
            f"the final answer does not match the output_schema at {where}: {err.message}"
        ) from None
    output = Struct()
    output.update(value if isinstance(value, dict) else {"value": value})
    return output
