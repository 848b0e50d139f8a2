"""Following ``page_token`` across the pages of a List call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def every_page(
    fetch: Callable[[str], Awaitable[tuple[Iterable[T], str]]],
) -> AsyncIterator[T]:
    """Yield every item of a paginated List, fetching pages as they are needed.

    Args:
        fetch: Fetches the page of a token ("" for the first): its items and the next token.

    Yields:
        The items of every page, in server order.

    """
    token = ""
    while True:
        page, token = await fetch(token)
        for item in page:
            yield item
        if not token:
            return
