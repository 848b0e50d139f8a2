"""Free TCP ports for local processes, chosen where the kernel never hands out ports itself.

A port found free by binding port 0 comes from the kernel's ephemeral range, and it is
released again before the process that is meant to listen on it starts. In that window
the kernel may give the same port to any outgoing connection on the machine (every gRPC
channel and HTTP client takes its local port from that range), and the listener's bind
then fails with "Address already in use". Ports outside the ephemeral range are never
assigned implicitly, so only another explicit choice can take them; those are made
unique within this process and checked by a bind.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

__all__ = ["free_port"]

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 20000
"""Below it live the well-known and commonly configured service ports (5432, 7233, 8080...)."""
_ATTEMPTS = 200

_lock = threading.Lock()
_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(part) for part in _EPHEMERAL_RANGE.read_text(encoding="ascii").split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default; other systems differ but this is only a preference.
    return low, high


def _candidates() -> list[int]:
    low, high = _ephemeral_range()
    ports = [*range(_LOWEST, min(low, 65536)), *range(max(high + 1, _LOWEST), 65536)]
    return [port for port in ports if port not in _handed_out]


def _bindable(host: str, port: int) -> bool:
    # No SO_REUSEADDR: a port still in TIME_WAIT counts as taken, as it would for a
    # listener that does not set it either.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """Pick a TCP port that is free right now and that the kernel will not give away.

    The port lies outside the kernel's ephemeral range when the machine leaves room for
    that, and no two calls in one process return the same port.

    Args:
        host: Interface to check.

    Returns:
        A port number; another process making its own explicit choice may still take it.

    """
    with _lock:
        candidates = _candidates()
        for port in random.sample(candidates, min(_ATTEMPTS, len(candidates))):
            if _bindable(host, port):
                _handed_out.add(port)
                return port
        # The whole range is taken or missing: let the kernel choose, as a last resort.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        _handed_out.add(port)
        return port
