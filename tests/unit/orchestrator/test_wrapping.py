"""WrappingInterceptor: each method's handler is wrapped once, on its first call."""

from __future__ import annotations

from typing import Any

import grpc

from orchestrator.servicers.wrapping import WrappingInterceptor


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


class _Counting(WrappingInterceptor):
    def __init__(self) -> None:
        super().__init__()
        self.wrapped: list[str] = []

    def wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        self.wrapped.append(method)
        return handler


async def test_a_method_is_wrapped_on_its_first_call_only() -> None:
    async def serve(request: Any, context: Any) -> Any:
        return request

    known: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(serve)
    asked: list[str] = []

    async def continuation(details: Any) -> grpc.RpcMethodHandler[Any, Any] | None:
        asked.append(details.method)
        return known if details.method == "/polyfleet.v1.S/Known" else None

    interceptor = _Counting()
    first = await interceptor.intercept_service(continuation, _Details("/polyfleet.v1.S/Known"))
    again = await interceptor.intercept_service(continuation, _Details("/polyfleet.v1.S/Known"))
    for _ in range(2):
        unknown = await interceptor.intercept_service(continuation, _Details("/x.Y/Unknown"))
        assert unknown is None

    assert first is again is known
    assert interceptor.wrapped == ["/polyfleet.v1.S/Known"]
    # Unknown names are asked each time and never kept (they are the callers' to invent).
    assert asked == ["/polyfleet.v1.S/Known", "/x.Y/Unknown", "/x.Y/Unknown"]
