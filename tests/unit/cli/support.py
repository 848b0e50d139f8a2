"""Helpers shared by the CLI tests: a running fake API and one ``polyfleet`` invocation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
EXAMPLE_MANIFEST = EXAMPLES / "agents" / "assistant.yaml"
EXAMPLE_WORKFLOWS = EXAMPLES / "workflows"


@dataclass
class FakeApi:
    """A running fake API and its state (see fake_api.py)."""

    address: str
    state: Any


@dataclass
class CliResult:
    """What one ``polyfleet`` invocation did."""

    code: int
    out: str
    err: str


Run = Callable[..., CliResult]


_T = TypeVar("_T")


def one_per_page(items: list[_T], token: str) -> tuple[list[_T], str]:
    """One item per page, to exercise page tokens; returns the page and the next token."""
    start = int(token or 0)
    return items[start : start + 1], str(start + 1) if start + 1 < len(items) else ""
