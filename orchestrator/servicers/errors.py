"""Canonical gRPC status codes for the orchestrator's errors, at the API edge."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

import store
from orchestrator.errors import (
    ExecutionDeadlineError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    OrchestratorError,
    WorkflowStartError,
)
from orchestrator.status import IllegalTransitionError

logger = logging.getLogger(__name__)

_CODES: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (IllegalTransitionError, grpc.StatusCode.FAILED_PRECONDITION),
    (WorkflowStartError, grpc.StatusCode.UNAVAILABLE),
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


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: Exception) -> NoReturn:
    code = status_code(err)
    if code is grpc.StatusCode.INTERNAL and not isinstance(err, OrchestratorError):
        logger.exception("unexpected error serving a request", exc_info=err)
        await context.abort(code, f"internal error: {type(err).__name__}")
    await context.abort(code, str(err))


_R = TypeVar("_R")
_S = TypeVar("_S")


def unary(
    method: Callable[[_S, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[_R]],
) -> Callable[[_S, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[_R]]:
    """Map errors raised by a unary servicer method to canonical status codes."""

    @functools.wraps(method)
    async def wrapper(self: _S, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> _R:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as err:  # noqa: BLE001 - the edge turns every error into a status
            await _abort(context, err)

    return wrapper


def streaming(
    method: Callable[[_S, Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[_R]],
) -> Callable[[_S, Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[_R]]:
    """Map errors raised by a server-streaming servicer method to status codes."""

    @functools.wraps(method)
    async def wrapper(
        self: _S, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[_R]:
        try:
            async for item in method(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as err:  # noqa: BLE001 - the edge turns every error into a status
            await _abort(context, err)

    return wrapper
