"""A real HTTP server on 127.0.0.1 for tests of `call: http` (uvicorn in a thread)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.helpers import free_port


class ThreadedServer:
    """A Starlette app served by uvicorn in a thread, on a free port of 127.0.0.1.

    Args:
        routes: The app's routes.

    """

    def __init__(self, routes: list[Route]) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            Starlette(routes=routes),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"test server {type(self).__name__} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class Server(ThreadedServer):
    """A real HTTP server on 127.0.0.1 (uvicorn in a thread) that records what it sees.

    Routes: ``/echo`` (any method) answers the request back; ``/count/{name}`` counts;
    ``/flaky/{key}?fail=N`` answers 503 N times then 200; ``/status/{code}``;
    ``/slow/{name}?ms=N`` holds the request N ms, tracking concurrency and disconnects;
    ``/text`` and ``/bytes`` answer non-JSON bodies; ``/big?bytes=N`` answers a large JSON
    body; ``/hold/{name}`` holds its first request until the client goes away and answers
    later ones at once (a task that was running when its runner died).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.disconnected: list[str] = []
        self.completed: list[str] = []
        self.echoed: list[dict[str, str]] = []
        super().__init__(
            [
                Route("/echo", self._echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
                Route("/count/{name}", self._count, methods=["GET", "POST"]),
                Route("/flaky/{key}", self._flaky),
                Route("/status/{code:int}", self._status),
                Route("/slow/{name}", self._slow),
                Route("/hold/{name}", self._hold),
                Route("/big", self._big),
                Route("/text", self._text),
                Route("/bytes", self._bytes),
            ]
        )

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.in_flight = self.max_in_flight = 0
            self.disconnected.clear()
            self.completed.clear()
            self.echoed.clear()

    def _hit(self, key: str) -> int:
        with self._lock:
            self.calls[key] += 1
            return self.calls[key]

    async def _echo(self, request: Request) -> Response:
        self._hit("echo")
        with self._lock:
            self.echoed.append(dict(request.headers))
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode()
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "body": body,
            }
        )

    async def _count(self, request: Request) -> Response:
        name = request.path_params["name"]
        return JSONResponse({"name": name, "count": self._hit(name)})

    async def _flaky(self, request: Request) -> Response:
        key = request.path_params["key"]
        count = self._hit(key)
        if count <= int(request.query_params.get("fail", "2")):
            return PlainTextResponse(f"unavailable (call {count})", status_code=503)
        return JSONResponse({"ok": True, "calls": count})

    async def _status(self, request: Request) -> Response:
        self._hit("status")
        return PlainTextResponse("nope", status_code=request.path_params["code"])

    async def _slow(self, request: Request) -> Response:
        name = request.path_params["name"]
        self._hit(name)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            deadline = time.monotonic() + int(request.query_params.get("ms", "100")) / 1000
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    with self._lock:
                        self.disconnected.append(name)
                    return Response(status_code=499)
                await asyncio.sleep(0.01)
        finally:
            with self._lock:
                self.in_flight -= 1
        with self._lock:
            self.completed.append(name)
        return JSONResponse({"name": name})

    async def _big(self, request: Request) -> Response:
        size = int(request.query_params.get("bytes", "1000"))
        return JSONResponse({"data": "x" * size})

    async def _hold(self, request: Request) -> Response:
        name = request.path_params["name"]
        if self._hit(name) > 1:
            return JSONResponse({"name": name, "held": False})
        while True:
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.05)
        with self._lock:
            self.disconnected.append(name)
        return Response(status_code=499)

    async def _text(self, request: Request) -> Response:
        return PlainTextResponse("hello")

    async def _bytes(self, request: Request) -> Response:
        return Response(b"\x00\x01\xff", media_type="application/octet-stream")
