"""The client's exception root, :class:`PolyfleetError`, and the failures it names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grpc
from google.rpc import error_details_pb2

from polyfleet.contract import phase_name
from polyfleet.error_details import EXECUTION_ID, error_info, field_violations
from polyfleet.v1 import common_pb2


class PolyfleetError(Exception):
    """Every failure of a client call.

    A failed RPC becomes a :class:`PolyfleetError` carrying its gRPC status code and the
    ``google.rpc`` details the API attaches (see :mod:`polyfleet.error_details`), so callers
    branch on data rather than on message text.

    Attributes:
        code: The call's gRPC status code; None for failures of the client itself.
        details: The server's message (or the client's own, for a client-side failure).
        reason: ``ErrorInfo.reason``: the API's stable error type, e.g. ``NotFound``.
        metadata: ``ErrorInfo.metadata``, e.g. ``{"execution_id": "aex-…"}``.
        field_violations: ``BadRequest`` violations naming the offending request fields.

    """

    def __init__(
        self,
        details: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        field_violations: Sequence[error_details_pb2.BadRequest.FieldViolation] = (),
    ) -> None:
        self.code = code
        self.details = details
        self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations = list(field_violations)
        # The CLI and logs show `<STATUS_CODE>: <details>`, as grpcurl does.
        shown = details or "no details"
        super().__init__(f"{code.name}: {shown}" if code is not None else shown)

    @property
    def execution_id(self) -> str:
        """The execution the error is about, when the API names one (else "")."""
        return self.metadata.get(EXECUTION_ID, "")

    @classmethod
    def from_rpc(cls, exc: grpc.aio.AioRpcError) -> PolyfleetError:
        """Translate a failed call, reading its ``google.rpc`` details.

        Args:
            exc: The error the call raised.

        Returns:
            The error with the call's code, message and details.

        """
        info = error_info(exc)
        return cls(
            exc.details() or "",
            code=exc.code(),
            reason=info.reason if info else "",
            metadata=dict(info.metadata) if info else None,
            field_violations=field_violations(exc),
        )


class WatchError(PolyfleetError):
    """A watch kept breaking before the execution reached a terminal phase."""


class WaitTimeoutError(PolyfleetError):
    """An execution was not terminal within the time a wait allowed.

    The execution keeps running; the error names it (:attr:`execution_id`) and carries
    its last phase (:attr:`phase`).

    Attributes:
        phase: The execution's phase when the wait gave up.
        timeout: The wait's limit in seconds.

    """

    def __init__(
        self, execution_id: str, phase: common_pb2.ExecutionPhase.ValueType, timeout: float
    ) -> None:
        self.phase = phase
        self.timeout = timeout
        super().__init__(
            f"execution {execution_id} is still {phase_name(phase)} after {timeout:g} s",
            metadata={EXECUTION_ID: execution_id},
        )
