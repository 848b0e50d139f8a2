"""Canonical gRPC status codes and ``google.rpc`` error details, at the API edge.

Every error leaves as a status with a bounded message and rich details (see
:mod:`polyfleet.error_details`): an ``ErrorInfo`` whose reason is the error's stable type,
and for INVALID_ARGUMENT a ``BadRequest`` built from the error's typed ``field``
attribute. A request body that is not valid protobuf is INVALID_ARGUMENT too (gRPC
itself would answer UNKNOWN): see :class:`MalformedRequestInterceptor`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

import store
from orchestrator.errors import (
    ExecutionDeadlineError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    OrchestratorError,
    PermissionDeniedError,
    RateLimitedError,
    UnauthenticatedError,
    UnavailableError,
    WorkflowStartError,
)
from orchestrator.servicers.wrapping import Context, WrappingInterceptor, wrap_handler
from orchestrator.status import IllegalTransitionError
from polyfleet.error_details import DOMAIN, EXECUTION_ID
from polyfleet.quoting import excerpt

logger = logging.getLogger(__name__)


# A status travels in HTTP/2 trailers, which clients cap (8 KB by default): past that the
# client reports RESOURCE_EXHAUSTED instead of the error. Messages quote caller input
# through polyfleet.quoting already; this bounds whatever is left.
_MAX_MESSAGE_CHARS = 1000

_CODES: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (RateLimitedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (IllegalTransitionError, grpc.StatusCode.FAILED_PRECONDITION),
    (WorkflowStartError, grpc.StatusCode.UNAVAILABLE),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE),
    (ExecutionDeadlineError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (store.NotFoundError, grpc.StatusCode.NOT_FOUND),
    (store.AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (store.ConflictError, grpc.StatusCode.ABORTED),
    (store.InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (store.StoreClosedError, grpc.StatusCode.UNAVAILABLE),
)


def status_code(err: Exception) -> grpc.StatusCode:
    """The canonical code for an error; INTERNAL for anything unexpected."""
    for kind, code in _CODES:
        if isinstance(err, kind):
            return code
    return grpc.StatusCode.INTERNAL


def error_reason(err: Exception) -> str:
    """The stable ``ErrorInfo.reason`` of an error, e.g. ``EXECUTION_DEADLINE``.

    An error's own ``reason_code`` wins (``SESSION_BUSY``); otherwise it is the class name
    without ``Error`` in upper snake case, so a new error type gets a reason without an
    edit here. Unexpected errors are ``INTERNAL``: their class names are not an API.
    """
    own = getattr(err, "reason_code", "")
    if isinstance(own, str) and own:
        return own
    if status_code(err) is grpc.StatusCode.INTERNAL and not isinstance(err, OrchestratorError):
        return "INTERNAL"
    name = type(err).__name__.removesuffix("Error")
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def error_status(err: Exception) -> grpc.Status:
    """The status an error leaves the API as: code, bounded message, rich details."""
    code = status_code(err)
    if code is grpc.StatusCode.INTERNAL and not isinstance(err, OrchestratorError):
        # Its text may hold anything (paths, internals): the log has it, the client not.
        message = f"internal error: {type(err).__name__}"
    else:
        message = excerpt(str(err), _MAX_MESSAGE_CHARS)
    metadata: dict[str, str] = {}
    execution_id = getattr(err, "execution_id", "")
    if isinstance(execution_id, str) and execution_id:
        metadata[EXECUTION_ID] = excerpt(execution_id)
    for name in ("kind", "key"):
        value = getattr(err, name, None)
        if isinstance(value, str) and value:
            metadata[name] = excerpt(value)
    details = [
        _pack(
            error_details_pb2.ErrorInfo(reason=error_reason(err), domain=DOMAIN, metadata=metadata)
        )
    ]
    field = getattr(err, "field", None)
    if code is grpc.StatusCode.INVALID_ARGUMENT and isinstance(field, str):
        # orchestrator errors call the why "problem", store errors "reason".
        why = getattr(err, "problem", None) or getattr(err, "reason", "")
        # An agent definition reports every invalid field, one violation each.
        pairs = getattr(err, "violations", None) or ((field, str(why)),)
        violations = [
            error_details_pb2.BadRequest.FieldViolation(
                field=excerpt(str(f), 200), description=excerpt(str(p), 500)
            )
            for f, p in pairs
        ]
        details.append(_pack(error_details_pb2.BadRequest(field_violations=violations)))
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    converted: grpc.Status = rpc_status.to_status(status)
    return converted


def _pack(message: error_details_pb2.ErrorInfo | error_details_pb2.BadRequest) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


async def abort_with(context: Context, err: Exception) -> NoReturn:
    """End the call with the status ``err`` maps to (see :func:`error_status`)."""
    if status_code(err) is grpc.StatusCode.INTERNAL and not isinstance(err, OrchestratorError):
        logger.exception("unexpected error serving a request", exc_info=err)
    status = error_status(err)
    await context.abort(status.code, status.details, status.trailing_metadata)


_R = TypeVar("_R")
_S = TypeVar("_S")


def unary(
    method: Callable[[_S, Any, Context], Awaitable[_R]],
) -> Callable[[_S, Any, Context], Awaitable[_R]]:
    """Map errors raised by a unary servicer method to canonical status codes."""

    @functools.wraps(method)
    async def wrapper(self: _S, request: Any, context: Context) -> _R:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as err:  # noqa: BLE001 - the edge turns every error into a status
            await abort_with(context, err)

    return wrapper


def streaming(
    method: Callable[[_S, Any, Context], AsyncIterator[_R]],
) -> Callable[[_S, Any, Context], AsyncIterator[_R]]:
    """Map errors raised by a server-streaming servicer method to status codes."""

    @functools.wraps(method)
    async def wrapper(self: _S, request: Any, context: Context) -> AsyncIterator[_R]:
        try:
            async for item in method(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as err:  # noqa: BLE001 - the edge turns every error into a status
            await abort_with(context, err)

    return wrapper


class _Malformed:
    """What the tolerant deserializer returns for a body that does not parse."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as err:  # noqa: BLE001 - DecodeError, or whatever a parser raises
            return _Malformed(err)

    return parse


def _malformed_error(method: str, malformed: _Malformed) -> InvalidArgumentError:
    # No field can be named: the body did not parse. The empty path means the request.
    return InvalidArgumentError(
        "", f"the body of {method} is not a valid protobuf request: {malformed.error}"
    )


class MalformedRequestInterceptor(WrappingInterceptor):
    """Answers a request body that is not valid protobuf with INVALID_ARGUMENT.

    gRPC's generated handlers deserialize before any servicer code runs and answer a
    failure with UNKNOWN; this wraps every unary-request handler's deserializer so a
    failure reaches the handler as a marker, which it turns into INVALID_ARGUMENT.
    """

    def wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Wrap a unary-request handler's deserializer and check its result first."""
        if handler.request_streaming or handler.request_deserializer is None:
            return handler

        @contextlib.asynccontextmanager
        async def parsed(request: Any, context: Context) -> AsyncIterator[None]:
            if isinstance(request, _Malformed):
                await abort_with(context, _malformed_error(method, request))
            yield

        return wrap_handler(handler, parsed, _tolerant(handler.request_deserializer))
