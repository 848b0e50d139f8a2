"""`python -m polyfleet.healthcheck`: exit 0 when the API's gRPC health says SERVING.

The orchestrator's Kubernetes probes run this (an ``exec`` probe, docs/deploy.md): the API
serves TLS, and Kubernetes' native gRPC probes speak only plaintext. It dials
``POLYFLEET_API_ADDRESS`` (an address bound to all interfaces is reached through loopback) with
the clients' settings of the same environment (``POLYFLEET_API_TLS``, ``_TLS_ROOT_CERT``,
``_TLS_SERVER_NAME``, and a client certificate for mTLS), and asks ``grpc.health.v1.Health``
for the overall status, which needs no token. It prints one line and exits 0 (SERVING) or 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import (  # type: ignore[import-untyped, unused-ignore]
    health_pb2,
    health_pb2_grpc,
)

from polyfleet.channel import create_sync_channel
from polyfleet.config import ApiSettings, ConfigError

DEFAULT_TIMEOUT = 5.0
"""Seconds the check waits for an answer; a probe's own timeout should be longer."""


def dial_address(listen_address: str) -> str:
    """The address a local client dials to reach a server listening on ``listen_address``.

    Args:
        listen_address: ``host:port`` as the server binds it (``0.0.0.0:7234``, ``[::]:7234``).

    Returns:
        ``listen_address`` with a wildcard or empty host replaced by ``127.0.0.1``.

    """
    host, _, port = listen_address.rpartition(":")
    host = host.strip("[]")
    if host in {"0.0.0.0", "::", ""}:
        host = "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check(settings: ApiSettings, timeout: float = DEFAULT_TIMEOUT) -> tuple[bool, str]:
    """Ask the API at ``settings.api_address`` whether it is serving.

    Args:
        settings: The API settings: where the server listens, how clients connect.
        timeout: Seconds to wait for the answer.

    Returns:
        Whether the server reports SERVING, and a one-line description.

    """
    address = dial_address(settings.api_address)
    try:
        with create_sync_channel(address, settings) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        name = code.name if code is not None else "error"
        return False, f"{address}: health check failed: {name}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return response.status == health_pb2.HealthCheckResponse.SERVING, f"{address}: {status}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check with the environment's settings; 0 when serving, 1 otherwise."""
    del argv  # no options: everything comes from the environment, as for the server
    try:
        serving, line = check(ApiSettings())
    except ConfigError as exc:  # a setting, or a TLS file it names, is unusable
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    print(line, file=sys.stdout if serving else sys.stderr)
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
