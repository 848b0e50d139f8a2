"""Resource identifiers."""

from __future__ import annotations

import uuid

from store.errors import InvalidArgumentError

# LMDB keys are at most 511 bytes and IDs are embedded in composite index keys, so they are
# kept well below that.
MAX_ID_BYTES = 128


def new_id(prefix: str) -> str:
    """Return a new random resource ID such as ``agt-1f0c9d3e8a7b6c5d4e3f``.

    Args:
        prefix: Kind prefix without the dash, e.g. ``"agt"``.

    """
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def check_id(resource_id: str, field: str = "id") -> bytes:
    """Validate a caller-chosen ID and return its key bytes.

    Args:
        resource_id: The ID.
        field: Name of the argument, for the error.

    Raises:
        InvalidArgumentError: The ID is empty, too long or contains NUL, which separates key
            parts.

    """
    key = resource_id.encode()
    if not key:
        raise InvalidArgumentError(field, "must not be empty")
    if len(key) > MAX_ID_BYTES:
        raise InvalidArgumentError(field, f"longer than {MAX_ID_BYTES} bytes")
    if b"\x00" in key:
        raise InvalidArgumentError(field, "contains a NUL character")
    return key
