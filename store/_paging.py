"""Page sizes and opaque page tokens for List."""

from __future__ import annotations

import base64
import binascii

from store.errors import InvalidPageTokenError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def effective_page_size(page_size: int) -> int:
    """Apply the default to a non-positive page size and cap it at ``MAX_PAGE_SIZE``."""
    if page_size <= 0:
        return DEFAULT_PAGE_SIZE
    return min(page_size, MAX_PAGE_SIZE)


def encode_token(index: str, key: bytes) -> str:
    """Return the token that resumes a scan of ``index`` after ``key``.

    The index name is part of the token so that a token cannot be replayed against another
    index, where its key would mean something else.
    """
    raw = index.encode() + b"\x00" + key
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(index: str, token: str, prefix: bytes, min_key_bytes: int) -> bytes | None:
    """Return the index key a token resumes after, or ``None`` for the first page.

    Args:
        index: Name of the index being scanned.
        token: The caller's page token.
        prefix: Prefix every key of the scanned range starts with (the filter value).
        min_key_bytes: Shortest valid key length after ``prefix``.

    Raises:
        InvalidPageTokenError: The token was not produced by a scan of the same range.

    """
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidPageTokenError("not a page token") from exc
    name, sep, key = raw.partition(b"\x00")
    if not sep or name != index.encode():
        raise InvalidPageTokenError("the token belongs to another list")
    if not key.startswith(prefix) or len(key) < len(prefix) + min_key_bytes:
        raise InvalidPageTokenError("the token belongs to a list with other filters")
    return key
