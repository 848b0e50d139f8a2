"""The runner's HTTP health endpoints: a tiny HTTP/1.1 responder on asyncio streams.

- ``/livez``: 200 while the process's event loop runs (answering at all proves it).
- ``/readyz``: 200 only while the workers poll and the orchestrator answers a gRPC health
  check; 503 with a one-line reason otherwise (starting, draining, orchestrator unreachable).

Only GET and HEAD; one request per connection. Nothing served here is secret: the bodies
are fixed words, a count and a gRPC status name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from polyfleet.config import ConfigError
from polyfleet.v1 import runner_pb2

logger = logging.getLogger(__name__)

Readiness = Callable[[], Awaitable[str | None]]
"""Returns None when ready, else a short reason why not."""

# The service the runner needs: the orchestrator reports it NOT_SERVING when it is unusable.
RUNNER_SERVICE = runner_pb2.DESCRIPTOR.services_by_name["RunnerService"].full_name
_MAX_HEAD_BYTES = 8192
_READ_TIMEOUT = 5.0
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class OrchestratorProbe:
    """Whether the orchestrator answers: a gRPC health check, cached for ``ttl`` seconds.

    Probes may come often (every kubelet period, every load balancer); one check at a time
    runs, and its answer serves every probe within ``ttl``.
    """

    def __init__(self, channel: grpc.aio.Channel, ttl: float = 3.0, timeout: float = 2.0) -> None:
        self._stub = health_pb2_grpc.HealthStub(channel)
        self._ttl = ttl
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._checked = -float("inf")
        self._answer: str | None = "orchestrator not checked yet"

    async def unreachable(self) -> str | None:
        """None when the orchestrator serves RunnerService, else why not."""
        async with self._lock:
            if time.monotonic() - self._checked >= self._ttl:
                self._answer = await self._check()
                self._checked = time.monotonic()
            return self._answer

    async def _check(self) -> str | None:
        try:
            response = await self._stub.Check(
                health_pb2.HealthCheckRequest(service=RUNNER_SERVICE), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as err:
            return f"orchestrator unreachable ({err.code().name})"
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            return f"orchestrator not serving ({status})"
        return None


class HealthServer:
    """Serves ``/livez`` and ``/readyz`` on ``host``:``port`` (0: any free port)."""

    def __init__(self, host: str, port: int, readiness: Readiness) -> None:
        self._host = host
        self._port = port
        self._readiness = readiness
        self._server: asyncio.Server | None = None
        self.port = port

    async def start(self) -> None:
        """Listen; a port that cannot be bound is a ConfigError naming the setting."""
        try:
            self._server = await asyncio.start_server(
                self._serve, self._host, self._port, limit=_MAX_HEAD_BYTES
            )
        except OSError as err:
            raise ConfigError(
                f"POLYFLEET_RUNNER_HEALTH_PORT: cannot listen on {self._host}:{self._port} "
                f"(POLYFLEET_RUNNER_HEALTH_ADDRESS): {err.strerror or err}"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("runner health on http://%s:%d/livez and /readyz", self._host, self.port)

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            status, body = await self._answer(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            status, body = 400, "bad request"
            head = b""
        except ConnectionError:
            writer.close()
            return
        try:
            writer.write(_response(status, body, head_only=head.startswith(b"HEAD ")))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, head: bytes) -> tuple[int, str]:
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3:  # method, target, version
            return 400, "bad request"
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if target not in (b"/livez", b"/readyz"):
            return 404, "not found: /livez or /readyz"
        if method not in (b"GET", b"HEAD"):
            return 405, "method not allowed: GET or HEAD"
        if target == b"/livez":
            return 200, "ok"
        why_not = await self._readiness()
        return (200, "ready") if why_not is None else (503, why_not)


def _response(status: int, body: str, *, head_only: bool) -> bytes:
    data = (body + "\n").encode()
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Bad Request')}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(data)}",
        "Cache-Control: no-store",
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head_only else data)
