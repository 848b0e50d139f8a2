"""Connecting to Temporal with the SDK's own environment configuration."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.envconfig import ClientConfig


async def connect(target_host: str | None = None, namespace: str | None = None) -> Client:
    """Connect a Temporal client.

    Connection settings come from the Temporal SDK's environment configuration
    (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS_*`,
    or a `TEMPORAL_CONFIG_FILE` profile), so polyfleet runs unchanged against the dev
    server, a self-hosted cluster or Temporal Cloud.

    Args:
        target_host: Overrides the configured address (used by tests).
        namespace: Overrides the configured namespace.

    Returns:
        A connected client whose data converter handles protobuf messages as
        `json/protobuf` payloads.

    """
    config = ClientConfig.load_client_connect_config()
    if target_host:
        config["target_host"] = target_host
    if namespace:
        config["namespace"] = namespace
    config.setdefault("target_host", "127.0.0.1:7233")
    return await Client.connect(**config)
