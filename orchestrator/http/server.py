"""The HTTP server (uvicorn) of the gateway and dashboard, run inside the orchestrator.

The socket is bound here rather than by uvicorn, which on a failed bind logs and exits
the process: a port in use becomes :class:`HttpAddressInUseError` naming
``POLYFLEET_HTTP_ADDRESS``, and port 0 picks a free port that :attr:`HttpServer.address`
then reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import grpc
import uvicorn
from google.protobuf.descriptor import ServiceDescriptor
from starlette.types import ASGIApp

from orchestrator.http.dashboard import DashboardConfig, dashboard_routes
from orchestrator.http.gateway import Gateway
from orchestrator.http.routes import RouteTable
from orchestrator.ownership import AddressInUseError
from polyfleet.channel import channel_options
from polyfleet.config import ApiSettings, ConfigError, HttpSettings

logger = logging.getLogger(__name__)

ADDRESS_VARIABLE = "POLYFLEET_HTTP_ADDRESS"


class HttpAddressInUseError(AddressInUseError):
    """The HTTP address cannot be bound, e.g. because another process listens there."""

    variable = ADDRESS_VARIABLE


def bind(address: str) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one).

    Raises:
        ConfigError: ``address`` is not ``host:port``.
        HttpAddressInUseError: The address cannot be bound.
    """
    host, _, port_text = address.rpartition(":")
    host = host.strip("[]")
    if not port_text.isdigit():
        raise ConfigError(f"{ADDRESS_VARIABLE}={address}: expected host:port")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As uvicorn does: a port in TIME_WAIT is free, only a listener is a conflict.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host or "0.0.0.0", int(port_text)))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise HttpAddressInUseError(address, reason) from None
    sock.setblocking(False)
    return sock


class HttpServer:
    """Serves an ASGI app with uvicorn in a task of the running event loop.

    Args:
        app: The ASGI app.
        address: ``host:port`` to listen on (port 0: a free one).
        certfile: The TLS certificate (PEM); None serves plain HTTP.
        keyfile: The TLS key, with ``certfile``.
        close_streams: Called on shutdown to end the app's open streams (SSE), which
            would otherwise hold their connections open until the grace period ends.

    """

    def __init__(
        self,
        app: ASGIApp,
        address: str,
        *,
        certfile: Path | None = None,
        keyfile: Path | None = None,
        close_streams: Callable[[], None] | None = None,
    ) -> None:
        self._app = app
        self._requested = address
        self._certfile = certfile
        self._keyfile = keyfile
        self._close_streams = close_streams
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.address = address

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``https://127.0.0.1:7280/``."""
        scheme = "https" if self._certfile else "http"
        return f"{scheme}://{self.address}/"

    def bind(self) -> None:
        """Take the address now (idempotent), so a port in use fails the start early.

        Raises:
            HttpAddressInUseError: The address cannot be bound.
        """
        if self._socket is None:
            self._socket = bind(self._requested)
            host = self._requested.rpartition(":")[0]
            self.address = f"{host}:{self._socket.getsockname()[1]}"

    async def start(self) -> None:
        """Bind if not yet bound and serve; returns once uvicorn accepts connections.

        Raises:
            HttpAddressInUseError: The address cannot be bound.
            RuntimeError: uvicorn failed to start.
        """
        self.bind()
        sock = self._socket
        assert sock is not None
        config = uvicorn.Config(
            self._app,
            log_config=None,
            lifespan="off",
            access_log=False,
            ssl_certfile=str(self._certfile) if self._certfile else None,
            ssl_keyfile=str(self._keyfile) if self._keyfile else None,
            # Requests in flight get this long; then uvicorn cancels them.
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        # The orchestrator owns the signals (SIGTERM shuts everything down in order):
        # uvicorn would install its own SIGINT/SIGTERM handlers in serve().
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        # uvicorn offers no event for "started", only this flag.
        while not server.started:
            if self._task.done():
                sock.close()
                self._task.result()
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    async def shutdown(self) -> None:
        """Stop accepting, close connections (SSE streams included) and wait; idempotent."""
        server, task = self._server, self._task
        if server is None or task is None:
            # Bound but never started (the start failed later): release the port.
            if self._socket is not None:
                self._socket.close()
            return
        server.should_exit = True
        if self._close_streams is not None:
            self._close_streams()
        try:
            await task
        except Exception:
            logger.exception("the HTTP server failed while stopping")


class HttpFrontend:
    """The HTTP/JSON API, its SSE streams and the dashboard, as the orchestrator runs them.

    The gateway reaches the orchestrator's gRPC server over a Unix socket in a private
    directory (mode 0700, removed by :meth:`close`): the orchestrator adds
    :attr:`grpc_target` as a port of its server before starting it.

    Args:
        settings: The HTTP settings (address, Temporal UI link).
        services: The services to serve: every method with a ``google.api.http`` option
            (RunnerService has none: runners speak gRPC only).
        api: The gRPC API's settings: message size limit and TLS certificate, which HTTPS
            reuses.
        dashboard: What the dashboard page needs besides the API.
        serving: Whether the orchestrator is healthy (``GET /healthz``).

    """

    def __init__(
        self,
        settings: HttpSettings,
        services: Iterable[ServiceDescriptor],
        api: ApiSettings,
        dashboard: DashboardConfig,
        serving: Callable[[], bool],
    ) -> None:
        self._settings = settings
        self._table = RouteTable.from_services(services)
        self._api = api
        self._dashboard = dashboard
        self._serving = serving
        self._socket_dir = Path(tempfile.mkdtemp(prefix="polyfleet-http-"))
        self.grpc_target = f"unix:{self._socket_dir / 'api.sock'}"
        self._channel: grpc.aio.Channel | None = None
        self._server: HttpServer | None = None

    @property
    def address(self) -> str:
        """The bound ``host:port`` once started (the setting's until then)."""
        return self._server.address if self._server else self._settings.address

    @property
    def url(self) -> str:
        """The base URL, e.g. ``https://127.0.0.1:7280/``."""
        return self._server.url if self._server else f"http://{self._settings.address}/"

    def bind(self) -> None:
        """Take the HTTP address (idempotent), so a port in use stops the start early.

        Raises:
            HttpAddressInUseError: The HTTP address cannot be bound.
        """
        if self._server is not None:
            return
        # Connects lazily: the gRPC server starts listening on the socket later.
        self._channel = grpc.aio.insecure_channel(
            self.grpc_target, options=channel_options(self._api)
        )
        gateway = Gateway(
            self._channel,
            self._table,
            self._serving,
            self._api.grpc_max_message_bytes,
        )
        server = HttpServer(
            gateway.app(dashboard_routes(self._dashboard)),
            self._settings.address,
            certfile=self._api.api_tls_cert if self._api.server_tls else None,
            keyfile=self._api.api_tls_key if self._api.server_tls else None,
            close_streams=gateway.close,
        )
        server.bind()
        self._server = server

    async def start(self) -> None:
        """Serve; the orchestrator's gRPC server must already listen on the socket.

        Raises:
            HttpAddressInUseError: The HTTP address cannot be bound.
        """
        self.bind()
        assert self._server is not None
        await self._server.start()
        logger.info("dashboard and HTTP API on %s", self._server.url)

    async def shutdown(self) -> None:
        """Stop serving HTTP and close the channel; idempotent."""
        if self._server is not None:
            await self._server.shutdown()
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def close(self) -> None:
        """Remove the socket's directory (after the gRPC server stopped); idempotent."""
        shutil.rmtree(self._socket_dir, ignore_errors=True)
