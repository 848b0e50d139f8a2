"""A streamable-HTTP MCP server for tests, served by uvicorn in a thread on 127.0.0.1."""

from __future__ import annotations

import threading
import time

import uvicorn
from mcp.server.fastmcp import FastMCP
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.helpers import free_port


class _RecordHeaders:
    """ASGI middleware remembering each request's Authorization header."""

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            self.seen.append(headers.get(b"authorization", b"").decode())
        await self.app(scope, receive, send)


class HttpMcpServer:
    """``with HttpMcpServer() as server: server.url``; records Authorization headers."""

    def __init__(self) -> None:
        self.port = free_port()
        self.authorizations: list[str] = []
        mcp = FastMCP("http-tools", host="127.0.0.1", port=self.port)

        @mcp.tool()
        def greet(name: str) -> str:
            """Greet someone."""
            return f"Hello, {name}, from HTTP"

        app = _RecordHeaders(mcp.streamable_http_app(), self.authorizations)
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        """The MCP endpoint."""
        return f"http://127.0.0.1:{self.port}/mcp"

    def __enter__(self) -> HttpMcpServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("MCP HTTP server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
