"""The one factory for gRPC channels to the orchestrator API."""

from __future__ import annotations

import grpc

from polyfleet.config import ApiSettings


def channel_options(settings: ApiSettings) -> list[tuple[str, int]]:
    """GRPC options shared by the server and every client.

    Args:
        settings: API settings holding the message size limit.

    Returns:
        Options for `grpc.aio.server` or `grpc.aio.insecure_channel`.

    """
    limit = settings.grpc_max_message_bytes
    return [
        ("grpc.max_send_message_length", limit),
        ("grpc.max_receive_message_length", limit),
        ("grpc.keepalive_time_ms", 30_000),
        # gRPC's default reconnect backoff grows to 120 s: after a long orchestrator
        # restart a client would stay disconnected long after the server is back.
        ("grpc.max_reconnect_backoff_ms", 5_000),
    ]


def create_channel(
    address: str | None = None,
    settings: ApiSettings | None = None,
    *,
    credentials: grpc.ChannelCredentials | None = None,
) -> grpc.aio.Channel:
    """Open an asyncio gRPC channel to the orchestrator API.

    Args:
        address: `host:port`; defaults to `POLYFLEET_API_ADDRESS`.
        settings: API settings; read from the environment when omitted.
        credentials: TLS credentials; None opens a plaintext channel.

    Returns:
        A TLS channel with ``credentials``, else an insecure (loopback / private network)
        asyncio channel.

    """
    settings = settings or ApiSettings()
    target = address or settings.api_address
    if credentials is not None:
        return grpc.aio.secure_channel(target, credentials, options=channel_options(settings))
    return grpc.aio.insecure_channel(target, options=channel_options(settings))
