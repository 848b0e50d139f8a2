"""The one factory for gRPC channels to the orchestrator API, and their TLS credentials."""

from __future__ import annotations

from pathlib import Path

import grpc

from polyfleet.config import ApiSettings, ConfigError


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


def read_pem(variable: str, path: Path) -> bytes:
    """Read a PEM file named by a setting.

    Args:
        variable: The environment variable that names it, for the error.
        path: The file.

    Returns:
        Its bytes.

    Raises:
        ConfigError: The file cannot be read or is empty; the message names the variable
            and the path (never the contents).

    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{variable}={path}: cannot read it: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{variable}={path}: not a PEM file")
    return data


def client_credentials(
    settings: ApiSettings, *, call_credentials: bool = True
) -> grpc.ChannelCredentials | None:
    """The TLS credentials every client of the API uses, from ``settings``.

    ``POLYFLEET_API_TLS`` turns TLS on; ``POLYFLEET_API_TLS_ROOT_CERT`` is the CA to trust
    (unset: the system roots); ``POLYFLEET_API_TLS_CLIENT_CERT`` and ``_KEY`` are presented
    for mTLS. Setting a client certificate or a root certificate implies TLS. Over TLS,
    ``POLYFLEET_API_TOKEN`` rides along as gRPC call credentials, so every call on the
    channel carries ``authorization: Bearer …`` whatever stub makes it.

    Args:
        settings: The API settings.
        call_credentials: False: no token on the channel; the caller passes
            :func:`bearer_metadata` with each call instead.

    Returns:
        Credentials for a secure channel, or None for plaintext.

    Raises:
        ConfigError: A PEM file cannot be read.

    """
    if not uses_tls(settings):
        return None
    root = (
        read_pem("POLYFLEET_API_TLS_ROOT_CERT", settings.api_tls_root_cert)
        if settings.api_tls_root_cert
        else None
    )
    chain = key = None
    if settings.api_tls_client_cert and settings.api_tls_client_key:
        chain = read_pem("POLYFLEET_API_TLS_CLIENT_CERT", settings.api_tls_client_cert)
        key = read_pem("POLYFLEET_API_TLS_CLIENT_KEY", settings.api_tls_client_key)
    transport = grpc.ssl_channel_credentials(
        root_certificates=root, private_key=key, certificate_chain=chain
    )
    if settings.api_token is None or not call_credentials:
        return transport
    token = grpc.access_token_call_credentials(settings.api_token.get_secret_value())
    return grpc.composite_channel_credentials(transport, token)


def uses_tls(settings: ApiSettings) -> bool:
    """Whether clients configured by ``settings`` speak TLS to the API."""
    return bool(settings.api_tls or settings.api_tls_root_cert or settings.api_tls_client_cert)


def token_metadata(settings: ApiSettings) -> tuple[tuple[str, str], ...]:
    """The bearer token as call metadata, for plaintext channels.

    gRPC sends call credentials only over TLS (:func:`client_credentials`); on a plaintext
    channel (loopback, ``polyfleet dev``) a client passes this with each call instead.
    """
    if uses_tls(settings):
        return ()
    return bearer_metadata(settings)


def bearer_metadata(settings: ApiSettings) -> tuple[tuple[str, str], ...]:
    """The bearer token as call metadata, whatever the channel (empty without a token).

    For a client that makes many calls on a channel opened with ``call_credentials=False``:
    gRPC's token call credentials run a Python plugin in a thread of its own for every
    call, about 0.3 ms of CPU per call (docs/benchmarks.md), where metadata costs nothing.
    """
    if settings.api_token is None:
        return ()
    return (("authorization", f"Bearer {settings.api_token.get_secret_value()}"),)


def _client_options(settings: ApiSettings, secure: bool) -> list[tuple[str, int | str]]:
    options: list[tuple[str, int | str]] = [*channel_options(settings)]
    if secure and settings.api_tls_server_name:
        options.append(("grpc.ssl_target_name_override", settings.api_tls_server_name))
    return options


def create_channel(
    address: str | None = None,
    settings: ApiSettings | None = None,
    *,
    call_credentials: bool = True,
) -> grpc.aio.Channel:
    """Open an asyncio gRPC channel to the orchestrator API.

    Args:
        address: `host:port`; defaults to `POLYFLEET_API_ADDRESS`.
        settings: API settings; read from the environment when omitted. Their TLS
            settings decide the credentials (:func:`client_credentials`).
        call_credentials: False: the token is not on the channel; every call must carry
            :func:`bearer_metadata`.

    Returns:
        A TLS channel when the settings ask for TLS, else a plaintext asyncio channel.

    Raises:
        ConfigError: A TLS file of the settings cannot be read.

    """
    settings = settings or ApiSettings()
    target = address or settings.api_address
    creds = client_credentials(settings, call_credentials=call_credentials)
    if creds is not None:
        return grpc.aio.secure_channel(target, creds, options=_client_options(settings, True))
    return grpc.aio.insecure_channel(target, options=_client_options(settings, False))


def create_sync_channel(address: str, settings: ApiSettings) -> grpc.Channel:
    """Open a blocking channel to the API with the same credentials (health checks).

    Args:
        address: `host:port`.
        settings: API settings.

    Returns:
        A blocking channel; the caller closes it.

    Raises:
        ConfigError: A TLS file of the settings cannot be read.

    """
    creds = client_credentials(settings)
    if creds is not None:
        return grpc.secure_channel(address, creds, options=_client_options(settings, True))
    return grpc.insecure_channel(address, options=_client_options(settings, False))
