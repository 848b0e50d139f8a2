"""Helpers shared by the CLI tests: a running fake API and one ``polyfleet`` invocation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
