"""Bounded quoting of caller input in error messages.

An error message that echoes a 20 KB field back pushes the status past gRPC's metadata
limit (8 KB by default on clients), so the client sees RESOURCE_EXHAUSTED instead of the
real error. Every error that quotes caller input goes through :func:`excerpt` (or
:func:`quote`), so the echo is bounded in one place.
"""

from __future__ import annotations

#: Characters of caller input an error message quotes at most.
QUOTE_LIMIT = 100


def excerpt(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` itself when short, else its first ``limit`` characters and its length.

    Args:
        text: Caller input, or a message that may contain some.
        limit: Characters kept.

    Returns:
        For example ``abc…(+19997 characters)``.

    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…(+{len(text) - limit} characters)"


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``value`` quoted as Python's ``repr`` does (control characters escaped), bounded.

    Args:
        value: Caller input; a non-string is converted with ``str`` first.
        limit: Characters of the value kept.

    Returns:
        For example ``'my-agent'``, or ``'xxxx'…(+19900 characters)`` for a long value.

    """
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}…(+{len(text) - limit} characters)"
