"""The ``google.rpc`` error details the API sends, and how a client reads them.

Every error status of the API carries a ``google.rpc.Status`` in the
``grpc-status-details-bin`` trailer with an ``ErrorInfo`` (``reason``: a stable error type,
``domain``: :data:`DOMAIN`, ``metadata``: e.g. ``execution_id``) and, for
INVALID_ARGUMENT, a ``BadRequest`` naming the offending field. Clients read these instead
of parsing messages (see docs/client.md).
"""

from __future__ import annotations

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

#: ``ErrorInfo.domain`` of every error the API raises.
DOMAIN = "polyfleet"

#: ``ErrorInfo.metadata`` key naming the execution an error is about.
EXECUTION_ID = "execution_id"

# Google's mapping of gRPC codes to HTTP statuses (google/rpc/code.proto), for the HTTP API
# and for the DSL's `call: grpc` errors, whose `status` is HTTP-like.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status Google's mapping gives ``code`` (500 for any it does not list)."""
    return HTTP_STATUS.get(code, 500)


# The trailer gRPC's rich error model uses (grpc_status.rpc_status sets it on the server).
_DETAILS_KEY = "grpc-status-details-bin"


def rich_status(call: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The ``google.rpc.Status`` a failed call carries, or None when it has none.

    Unlike ``grpc_status.rpc_status.from_call`` this never raises: an error raised by the
    client itself (its own deadline, an unreachable server) simply has no details.
    """
    for key, value in call.trailing_metadata() or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:
                return None
    return None


def error_info(call: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo | None:
    """The ``ErrorInfo`` of a failed call, or None."""
    status = rich_status(call)
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None


def field_violations(
    call: grpc.aio.AioRpcError,
) -> list[error_details_pb2.BadRequest.FieldViolation]:
    """The ``BadRequest`` field violations of a failed call (empty when it has none)."""
    status = rich_status(call)
    found: list[error_details_pb2.BadRequest.FieldViolation] = []
    for detail in status.details if status else ():
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.extend(bad.field_violations)
    return found
