"""Byte encodings of the composite keys of indexes, event logs and dedup records.

Keys are compared bytewise by LMDB, so every numeric part is fixed-width big-endian and every
variable-width part is either last or length-prefixed.
"""

from __future__ import annotations

import struct

from google.protobuf.timestamp_pb2 import Timestamp

from store.errors import InvalidArgumentError

_MAX_INT64 = 2**63 - 1
_U64 = struct.Struct(">Q")
_U16 = struct.Struct(">H")
# LMDB keys are at most 511 bytes; an index key holds a value, a time and an ID.
MAX_INDEXED_VALUE_BYTES = 256
MAX_REPORT_ID_BYTES = 256
TIME_KEY_BYTES = _U64.size
SEQUENCE_BYTES = _U64.size


def time_key(create_time: Timestamp) -> bytes:
    """Encode a creation time so that an ascending scan visits the newest first."""
    nanos = min(max(create_time.ToNanoseconds(), 0), _MAX_INT64)
    return _U64.pack(_MAX_INT64 - nanos)


def value_prefix(field: str, value: str | int) -> bytes:
    """Encode an indexed field value as a length-prefixed key part.

    The length prefix keeps one value's keys from sharing a prefix with a longer value's
    (``"a"`` versus ``"ab"``).

    Raises:
        InvalidArgumentError: The value is too long to be part of a key.

    """
    raw = str(value).encode()
    if len(raw) > MAX_INDEXED_VALUE_BYTES:
        raise InvalidArgumentError(field, f"longer than {MAX_INDEXED_VALUE_BYTES} bytes")
    return _U16.pack(len(raw)) + raw


def name_key(kind: str, name: str) -> bytes:
    """Encode a unique name as the key of a name index.

    Raises:
        InvalidArgumentError: The name is too long to be a key.

    """
    raw = name.encode()
    if len(raw) > MAX_INDEXED_VALUE_BYTES:
        raise InvalidArgumentError(f"{kind}.name", f"longer than {MAX_INDEXED_VALUE_BYTES} bytes")
    return raw


def log_prefix(owner_id: str) -> bytes:
    """Return the prefix shared by every event of one execution."""
    return owner_id.encode() + b"\x00"


def event_key(owner_id: str, sequence: int) -> bytes:
    """Encode the key of one event: the owner ID, NUL, the big-endian sequence number."""
    return log_prefix(owner_id) + _U64.pack(sequence)


def sequence_of(key: bytes) -> int:
    """Decode the sequence number from an event key."""
    return int(_U64.unpack(key[-SEQUENCE_BYTES:])[0])


def encode_sequence(sequence: int) -> bytes:
    """Encode a sequence number as a fixed-width value."""
    return _U64.pack(sequence)


def report_key(owner_id: str, report_id: str) -> bytes:
    """Encode the key that records that a report was applied to its owner.

    Raises:
        InvalidArgumentError: The report ID is too long to be part of a key.

    """
    raw = report_id.encode()
    if len(raw) > MAX_REPORT_ID_BYTES:
        raise InvalidArgumentError("report_id", f"longer than {MAX_REPORT_ID_BYTES} bytes")
    return owner_id.encode() + b"\x00" + raw
