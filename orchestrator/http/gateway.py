"""The HTTP/JSON gateway: each route calls the orchestrator's own gRPC method.

The gateway holds no service logic: it turns an HTTP request into the method's request
message (:mod:`orchestrator.http.routes`), calls the method over a private channel to the
orchestrator's gRPC server (so authentication, roles, limits, tracing and metrics are the
interceptors every gRPC call goes through) and turns the answer into proto3 JSON, an
``application/problem+json`` error (RFC 9457) or, for server-streaming methods, a
``text/event-stream`` (SSE) whose ``id:`` is the event's sequence number.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from orchestrator.http.routes import (
    HttpRoute,
    MethodNotAllowedError,
    RequestError,
    RouteNotFoundError,
    RouteTable,
)
from polyfleet.error_details import EXECUTION_ID, error_info, field_violations, http_status

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# Headers forwarded to the gRPC call as metadata: the caller's credentials and the W3C
# trace context, so the call is authenticated and traced as a gRPC client's would be.
FORWARDED_HEADERS = ("authorization", "traceparent", "tracestate")

# SSE: a comment this often keeps proxies and browsers from closing an idle stream.
KEEPALIVE_SECONDS = 15.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_CREATE_EXECUTION = re.compile(r"^Create\w*Execution$")
_WORDS = re.compile(r"[A-Z][a-z0-9]*")


def problem(
    status: int,
    detail: str,
    *,
    code: str = "",
    violations: Sequence[tuple[str, str]] = (),
    execution_id: str = "",
    headers: dict[str, str] | None = None,
) -> Response:
    """An ``application/problem+json`` response (RFC 9457).

    Args:
        status: The HTTP status.
        detail: What went wrong (the gRPC status message).
        code: The gRPC code name, e.g. ``INVALID_ARGUMENT``.
        violations: ``(field, description)`` pairs for ``fieldViolations``.
        execution_id: The execution the error is about, when it names one.
        headers: Extra response headers.

    """
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        # 499 is not in the IANA registry: it is nginx's (and Google's) "client closed".
        title = "Client Closed Request" if status == 499 else "Error"
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    if code:
        body["code"] = code
    if violations:
        body["fieldViolations"] = [{"field": f, "description": d} for f, d in violations]
    if execution_id:
        body["executionId"] = execution_id
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def rpc_problem(err: grpc.aio.AioRpcError) -> Response:
    """The problem+json response for a failed gRPC call, with its rich error details."""
    code = err.code()
    status = http_status(code)
    info = error_info(err)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return problem(
        status,
        err.details() or code.name,
        code=code.name,
        violations=[(v.field, v.description) for v in field_violations(err)],
        execution_id=info.metadata.get(EXECUTION_ID, "") if info else "",
        headers=headers,
    )


def request_problem(err: RequestError) -> Response:
    """The 400 for a request that does not become a message, naming the field."""
    violations = [(err.field, err.description)] if err.field else [("body", err.description)]
    return problem(400, str(err), code=grpc.StatusCode.INVALID_ARGUMENT.name, violations=violations)


def to_json(message: Message) -> dict[str, Any]:
    """A message as proto3 JSON: lowerCamelCase names, defaults left out."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=False)


def sse_message(message: Message) -> str:
    """One SSE message for a streamed response.

    A response with a ``kind`` oneof (a Watch's snapshot or event) is sent as the set
    member, ``event:`` its name; any other message (the change stream's) as itself,
    ``event:`` the last word of its type (``ExecutionChange``: ``change``). The ``id:`` is
    the event's ``sequence``, or the snapshot's ``status.last_sequence``.
    """
    kind = message.WhichOneof("kind") if "kind" in message.DESCRIPTOR.oneofs_by_name else None
    inner: Message = getattr(message, kind) if kind else message
    event = kind or _WORDS.findall(message.DESCRIPTOR.name)[-1].lower()
    sequence = _sequence(inner)
    data = json.dumps(to_json(inner), separators=(",", ":"), ensure_ascii=False)
    head = f"id: {sequence}\n" if sequence is not None else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


def _sequence(message: Message) -> int | None:
    fields = message.DESCRIPTOR.fields_by_name
    if "sequence" in fields:
        return int(message.sequence)  # type: ignore[attr-defined]
    if "status" in fields:
        status: Any = message.status  # type: ignore[attr-defined]
        if "last_sequence" in status.DESCRIPTOR.fields_by_name:
            return int(status.last_sequence)
    return None


class Gateway:
    """The HTTP/JSON API over a channel to the orchestrator's gRPC server.

    Args:
        channel: A channel to the orchestrator's own server (a private Unix socket).
        table: The routes to serve.
        serving: Whether the orchestrator is healthy, for ``GET /healthz``.
        max_body_bytes: Bodies larger than this are refused with 413 (the gRPC limit).
        keepalive_seconds: Interval of the SSE keepalive comments.

    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        table: RouteTable,
        serving: Callable[[], bool],
        max_body_bytes: int,
        *,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        self._channel = channel
        self._table = table
        self._serving = serving
        self._max_body = max_body_bytes
        self._keepalive = keepalive_seconds
        # Open streams, cancelled by close(): an SSE stream never ends by itself.
        self._calls: set[grpc.aio.UnaryStreamCall[Any, Any]] = set()

    def close(self) -> None:
        """End every open SSE stream (on shutdown), so connections can close."""
        for call in list(self._calls):
            call.cancel()

    def app(self, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
        """The ASGI app: ``/healthz``, the API under ``/v1/``, then ``extra_routes``.

        Args:
            extra_routes: Routes after the API's (the dashboard, which ends in a catch-all).

        """
        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        return Starlette(
            routes=[
                Route("/healthz", self.healthz, methods=["GET", "HEAD"]),
                Route("/v1/{rest:path}", self.handle, methods=methods),
                *extra_routes,
            ]
        )

    async def healthz(self, request: Request) -> Response:
        """200 while the orchestrator serves, else 503 (no authentication)."""
        serving = self._serving()
        return JSONResponse(
            {"status": "SERVING" if serving else "NOT_SERVING"},
            status_code=200 if serving else 503,
            headers={"Cache-Control": "no-store"},
        )

    async def handle(self, request: Request) -> Response:
        """Serve one API request; never lets an error out as a bare 500."""
        try:
            return await self._handle(request)
        except Exception:
            logger.exception("unexpected error serving %s %s", request.method, request.url.path)
            return problem(500, "internal error", code=grpc.StatusCode.INTERNAL.name)

    async def _handle(self, request: Request) -> Response:
        # The raw path, so an escaped "/" (%2F) in an ID stays inside its segment.
        raw = request.scope.get("raw_path")
        path = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
        try:
            route, params = self._table.match(request.method, path)
        except RouteNotFoundError:
            return problem(404, f"no API route {request.method} {request.url.path}")
        except MethodNotAllowedError as err:
            return problem(
                405,
                f"{request.method} is not allowed on {request.url.path}",
                headers={"Allow": ", ".join(err.allowed)},
            )
        body = await self._read_body(request)
        if body is None:
            return problem(
                413,
                f"the request body is larger than the API's limit of {self._max_body} bytes",
                code=grpc.StatusCode.RESOURCE_EXHAUSTED.name,
            )
        try:
            message = route.build_request(params, request.query_params.multi_items(), body)
            if route.streaming:
                _resume_from(message, request.headers.get("last-event-id"))
        except RequestError as err:
            return request_problem(err)
        metadata = tuple(
            (name, request.headers[name]) for name in FORWARDED_HEADERS if name in request.headers
        )
        if route.streaming:
            return await self._stream(route, message, metadata)
        return await self._unary(route, message, metadata)

    async def _read_body(self, request: Request) -> bytes | None:
        """The body, or None when it is over the limit (checked before reading it all)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_body:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _unary(
        self, route: HttpRoute, message: Message, metadata: tuple[tuple[str, str], ...]
    ) -> Response:
        call = self._channel.unary_unary(
            route.grpc_path,
            request_serializer=type(message).SerializeToString,
            response_deserializer=route.response_class.FromString,
        )
        try:
            response: Message = await call(message, metadata=metadata)
        except grpc.aio.AioRpcError as err:
            return rpc_problem(err)
        created_id = getattr(response, "id", "")
        if _CREATE_EXECUTION.match(route.method.name) and created_id:
            # Accepted, not done: the execution runs on; Location is where to follow it.
            location = f"{route.template.literal_prefix}/{quote(created_id, safe='')}"
            return JSONResponse(to_json(response), status_code=202, headers={"Location": location})
        return JSONResponse(to_json(response))

    async def _stream(
        self, route: HttpRoute, message: Message, metadata: tuple[tuple[str, str], ...]
    ) -> Response:
        call = self._channel.unary_stream(
            route.grpc_path,
            request_serializer=type(message).SerializeToString,
            response_deserializer=route.response_class.FromString,
        )(message, metadata=metadata)
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)
        # The SSE headers go out once the call is known to be open: at its first message, or
        # at the server's headers (a change stream sends them before it has anything to
        # say). A refusal (401, 403, 404, 429, ...) comes as a trailers-only response, whose
        # headers arrive with the status: the call is then already done, and the refusal
        # becomes a problem+json response instead of a stream.
        first = asyncio.ensure_future(call.read())
        headers = asyncio.ensure_future(call.initial_metadata())
        await asyncio.wait({first, headers}, return_when=asyncio.FIRST_COMPLETED)
        if not headers.done():
            headers.cancel()
        if first.done() or call.done():
            if first.cancelled():
                # close() cancelled the call: the server is shutting down.
                return problem(503, "the server is shutting down", code="UNAVAILABLE")
            try:
                await first
            except grpc.aio.AioRpcError as err:
                return rpc_problem(err)
        return StreamingResponse(
            self._events(call, first),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )

    async def _events(
        self, call: grpc.aio.UnaryStreamCall[Any, Any], pending: asyncio.Future[Any]
    ) -> AsyncIterator[str]:
        """The SSE body; cancelling it (the client went away) cancels the gRPC call."""
        try:
            while True:
                done, _ = await asyncio.wait({pending}, timeout=self._keepalive)
                if not done:
                    yield ": keepalive\n\n"
                    continue
                if pending.cancelled():
                    # close(): the server is shutting down.
                    return
                try:
                    item = pending.result()
                except grpc.aio.AioRpcError as err:
                    # Headers are out: the error becomes the stream's last message.
                    yield _sse_error(err)
                    return
                if item is grpc.aio.EOF:
                    return
                yield sse_message(item)
                pending = asyncio.ensure_future(call.read())
        finally:
            call.cancel()
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                    await pending


def _sse_error(err: grpc.aio.AioRpcError) -> str:
    problem_body = rpc_problem(err).body
    data = bytes(problem_body).decode("utf-8")
    return f"event: error\ndata: {data}\n\n"


def _resume_from(message: Message, last_event_id: str | None) -> None:
    """Apply an SSE ``Last-Event-ID`` header as the request's ``after_sequence``.

    Raises:
        RequestError: The header is not a sequence number.
    """
    if last_event_id is None or "after_sequence" not in message.DESCRIPTOR.fields_by_name:
        return
    value = last_event_id.strip()
    if not value.isdigit():
        raise RequestError("Last-Event-ID", f"{value!r} is not an event sequence number")
    message.after_sequence = int(value)  # type: ignore[attr-defined]
