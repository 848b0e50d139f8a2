"""Free ports come from outside the kernel's ephemeral range, never twice, and are bindable."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from polyfleet import ports
from polyfleet.ports import free_port


def test_ports_avoid_the_ephemeral_range_and_never_repeat() -> None:
    low, high = ports._ephemeral_range()
    chosen = [free_port() for _ in range(50)]
    assert len(set(chosen)) == len(chosen)
    assert all(not low <= port <= high for port in chosen), (low, high, chosen)
    for port in chosen:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_taken_port_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        busy = int(taken.getsockname()[1])
        monkeypatch.setattr(ports, "_candidates", lambda: [busy])
        port = free_port()
    assert port != busy
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_the_range_is_read_from_the_kernel_or_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "absent"
    monkeypatch.setattr(ports, "_EPHEMERAL_RANGE", missing)
    assert ports._ephemeral_range() == (32768, 60999)
