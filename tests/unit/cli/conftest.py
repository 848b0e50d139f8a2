"""Shared fixtures of the CLI tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

FAKE_API_PATH = Path(__file__).with_name("fake_api.py")


def _load_fake_api() -> ModuleType:
    # Loaded by path so it works under any pytest import mode; the same file also runs as a
    # fake orchestrator child process in the fleet tests.
    name = "polyfleet_cli_tests_fake_api"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, FAKE_API_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fake_api() -> ModuleType:
    """The fake orchestrator API module (see fake_api.py)."""
    return _load_fake_api()
