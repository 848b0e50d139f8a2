"""Byte encodings of the composite keys of indexes, event logs and dedup records.

Keys are compared bytewise by LMDB, so every numeric part is fixed-width big-endian and every
variable-width part is either last or length-prefixed.
"""

from __future__ import annotations

import struct

from google.protobuf.timestamp_pb2 import Timestamp

from store.errors import InvalidArgumentError

_MAX_INT64 = 2**63 - 1
_MAX_UINT64 = 2**64 - 1
_U64 = struct.Struct(">Q")
_U16 = struct.Struct(">H")
# LMDB keys are at most 511 bytes; an index key holds a value, a time and an ID.
MAX_INDEXED_VALUE_BYTES = 256
MAX_REPORT_ID_BYTES = 256
MAX_REQUEST_KEY_BYTES = 256
TIME_KEY_BYTES = _U64.size
SEQUENCE_BYTES = _U64.size


def time_key(create_time: Timestamp) -> bytes:
    """Encode a creation time so that an ascending scan visits the newest first."""
    nanos = min(max(create_time.ToNanoseconds(), 0), _MAX_INT64)
    return _U64.pack(_MAX_INT64 - nanos)


def time_bounds(
    prefix: bytes, created_after: int, created_before: int
) -> tuple[bytes, bytes | None]:
    """Return the key range of one index range that holds a creation-time range.

    Index keys are ``prefix + time key + id`` and the time key decreases as the time
    increases, so ``created_before`` bounds the start of the range and ``created_after`` its
    end. Creation times are stored clamped to ``[0, 2^63-1]``, which the bounds follow.

    Args:
        prefix: Prefix shared by every key of the scanned index range.
        created_after: Unix nanoseconds, inclusive; non-positive means unbounded.
        created_before: Unix nanoseconds, exclusive; 0 means unbounded, and a negative time
            precedes every stored one.

    Returns:
        The first key of the range and the first key after it (None: the end of ``prefix``).

    """
    start = prefix
    if created_before:
        # create_ns < created_before  <=>  time key >= 2^63-1 - created_before + 1
        start += _U64.pack(min(max(_MAX_INT64 - created_before + 1, 0), _MAX_UINT64))
    end = None
    if created_after > 0:
        # create_ns >= created_after  <=>  time key < 2^63-1 - created_after + 1
        end = prefix + _U64.pack(_MAX_INT64 - min(created_after, _MAX_INT64) + 1)
    return start, end


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


def request_key(key: str) -> bytes:
    """Encode the caller's idempotency key of a create request as a database key.

    Raises:
        InvalidArgumentError: The key is empty or too long to be a key.

    """
    raw = key.encode()
    if not raw:
        raise InvalidArgumentError("request_key", "must not be empty")
    if len(raw) > MAX_REQUEST_KEY_BYTES:
        raise InvalidArgumentError("request_key", f"longer than {MAX_REQUEST_KEY_BYTES} bytes")
    return raw


def encode_request(resource_id: str, fingerprint: bytes) -> bytes:
    """Encode what a request key created: the resource ID, NUL, the request's fingerprint.

    IDs contain no NUL, so the first NUL ends the ID whatever bytes the fingerprint holds.
    """
    return resource_id.encode() + b"\x00" + fingerprint


def decode_request(value: bytes) -> tuple[str, bytes]:
    """Decode the resource ID and the fingerprint recorded for a request key."""
    resource_id, _, fingerprint = value.partition(b"\x00")
    return resource_id.decode(), fingerprint
