"""Shared fixtures of the CLI tests."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from polyfleet.cli import main
from tests.unit.cli.support import EXAMPLE_MANIFEST, CliResult, FakeApi, Run

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


@pytest.fixture
def fake_server(fake_api: ModuleType) -> Iterator[FakeApi]:
    """A fake API served on a free port, stopped after the test."""
    state = fake_api.FakeState()
    server, port = fake_api.serve("127.0.0.1:0", state)
    try:
        yield FakeApi(f"127.0.0.1:{port}", state)
    finally:
        server.stop(None)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``polyfleet`` in-process; return its exit code and output."""

    def run(*argv: str) -> CliResult:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def applied(fake_server: FakeApi, run_cli: Run) -> FakeApi:
    """The fake API with the example agent applied."""
    result = run_cli("--address", fake_server.address, "apply", "-f", str(EXAMPLE_MANIFEST))
    assert result.code == 0, result.err
    return fake_server
