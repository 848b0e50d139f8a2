"""Reading a paged listing to its end, for the orchestrator's own scans."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def every_page(fetch: Callable[[str], Awaitable[tuple[Sequence[T], str]]]) -> list[T]:
    """Every item of a paged listing: ``fetch(page_token)`` until it returns no next token.

    The API serves one page per call; the orchestrator's own scans (a session's queue,
    the reconciler, the agent names a workflow may call) need the whole set.
    """
    items: list[T] = []
    token = ""
    while True:
        page, token = await fetch(token)
        items.extend(page)
        if not token:
            return items
