"""Wrapping a method's handler so work runs around every call, whatever its streaming shape.

The API's interceptors (tracing, metrics, authentication and roles) each need the same thing:
run something before the servicer and after it, for unary, server-streaming and
bidirectional (reflection) methods alike. :func:`wrap_handler` does the wrapping once; an
interceptor supplies only the ``around`` context manager.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc

# What a servicer is called with on the aio server.
Context = grpc.aio.ServicerContext[Any, Any]
Continuation = Callable[
    [grpc.HandlerCallDetails], Awaitable["grpc.RpcMethodHandler[Any, Any] | None"]
]
# Entered around each call with its request (None for a request stream) and context; an
# exception raised on entry ends the call before the servicer runs.
Around = Callable[[Any, Context], AbstractAsyncContextManager[Any]]


class WrappingInterceptor(grpc.aio.ServerInterceptor, ABC):
    """An interceptor that wraps each served method's handler once and reuses it.

    gRPC runs the interceptors for every call, and rebuilding each one's wrapper (closures,
    a handler object) every time cost more than the work they wrap. The wrapper of a
    method depends only on its handler, so the first call's is kept; the outermost
    interceptor's, which holds all the inner ones, then answers every later call. Unknown
    methods (no handler) are not kept: their names are the callers' and unbounded.
    """

    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """The method's wrapped handler, built on its first call."""
        method = str(handler_call_details.method)
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = await continuation(handler_call_details)
            if handler is None:
                return None
            wrapped = self._wrapped[method] = self.wrap(handler, method)
        return wrapped

    @abstractmethod
    def wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """``handler`` of ``method`` (``/package.Service/Method``) as every call runs it."""


def wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any],
    around: Around,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with ``around`` entered around every call of it.

    Args:
        handler: The method's handler.
        around: What runs around each call.
        request_deserializer: Replaces the handler's own (see MalformedRequestInterceptor).

    Client-streaming methods (the API has none) come back unwrapped.
    """
    deserialize = request_deserializer or handler.request_deserializer
    # Typed for the sync API; the aio server calls them with aio contexts.
    inner: Any
    if handler.unary_unary is not None:
        inner = handler.unary_unary

        async def unary_unary(request: Any, context: Context) -> Any:
            async with around(request, context):
                return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary,
            request_deserializer=deserialize,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        inner = handler.unary_stream

        async def unary_stream(request: Any, context: Context) -> None:
            async with around(request, context):
                await serve_stream(inner(request, context), context)

        return grpc.unary_stream_rpc_method_handler(
            unary_stream,
            request_deserializer=deserialize,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_stream is not None:
        inner = handler.stream_stream

        async def stream_stream(requests: AsyncIterator[Any], context: Context) -> None:
            async with around(None, context):
                await serve_stream(inner(requests, context), context)

        return grpc.stream_stream_rpc_method_handler(
            stream_stream,
            request_deserializer=deserialize,
            response_serializer=handler.response_serializer,
        )
    return handler


async def serve_stream(result: Any, context: Context) -> None:
    """Send what a streaming servicer produces: an async generator's items, or its writes."""
    if inspect.isasyncgen(result):
        async for item in result:
            await context.write(item)
    else:
        await result
