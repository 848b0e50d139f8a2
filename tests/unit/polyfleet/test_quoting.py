"""Errors quote caller input with a bounded prefix."""

from __future__ import annotations

from polyfleet.quoting import QUOTE_LIMIT, excerpt, quote


def test_short_values_are_quoted_whole() -> None:
    assert quote("my-agent") == "'my-agent'"
    assert quote("a\x00b") == "'a\\x00b'"
    assert excerpt("abc") == "abc"


def test_long_values_keep_a_prefix_and_say_how_much_was_cut() -> None:
    quoted = quote("x" * 20_000)
    assert quoted == f"'{'x' * QUOTE_LIMIT}'…(+{20_000 - QUOTE_LIMIT} characters)"
    assert excerpt("y" * 50, limit=10) == "yyyyyyyyyy…(+40 characters)"
