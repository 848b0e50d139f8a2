"""The API edge: canonical codes, bounded messages and google.rpc error details."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

import store
from orchestrator.errors import (
    ExecutionDeadlineError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    WorkflowStartError,
)
from orchestrator.servicers.errors import error_reason, error_status
from orchestrator.status import IllegalTransitionError
from polyfleet.error_details import DOMAIN, EXECUTION_ID
from polyfleet.v1 import common_pb2


def _details(status: grpc.Status) -> status_pb2.Status:
    ((key, value),) = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    rich = status_pb2.Status.FromString(value)
    assert rich.code == status.code.value[0]
    assert rich.message == status.details
    return rich


def _info(status: grpc.Status) -> error_details_pb2.ErrorInfo:
    for detail in _details(status).details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    raise AssertionError("no ErrorInfo")


def _violations(status: grpc.Status) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for detail in _details(status).details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.extend((v.field, v.description) for v in bad.field_violations)
    return found


def test_invalid_argument_names_the_field_as_a_bad_request() -> None:
    status = error_status(InvalidArgumentError("execution.message", "must not be empty"))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(status) == [("execution.message", "must not be empty")]
    info = _info(status)
    assert (info.reason, info.domain) == ("INVALID_ARGUMENT", DOMAIN)


def test_several_invalid_fields_are_one_violation_each() -> None:
    err = InvalidArgumentError.of([("agent.name", "must not be empty"), ("agent.graph", "bad")])
    status = error_status(err)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(status) == [("agent.name", "must not be empty"), ("agent.graph", "bad")]
    assert status.details == "agent.name: must not be empty (and 1 more problem)"


def test_many_violations_stay_within_the_trailers() -> None:
    many = [(f"agent.secrets[{i}]", "x" * 1000) for i in range(100)]
    status = error_status(InvalidArgumentError.of(many))
    violations = _violations(status)
    assert 1 < len(violations) < 100
    assert sum(len(f) + len(d) for f, d in violations) <= InvalidArgumentError.MAX_VIOLATION_CHARS
    assert len(_details(status).SerializeToString()) < 6000


def test_store_invalid_arguments_name_their_field_too() -> None:
    status = error_status(store.InvalidPageTokenError("garbled"))
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(status) == [("page_token", "garbled")]
    assert _info(status).reason == "INVALID_PAGE_TOKEN"


def test_execute_deadline_names_the_execution_in_error_info() -> None:
    status = error_status(ExecutionDeadlineError("aex-123", 5))
    assert status.code == grpc.StatusCode.DEADLINE_EXCEEDED
    info = _info(status)
    assert info.reason == "EXECUTION_DEADLINE"
    assert info.metadata[EXECUTION_ID] == "aex-123"
    assert _violations(status) == []


def test_a_busy_session_names_the_execution_in_flight() -> None:
    err = FailedPreconditionError(
        "session ses-1 has execution aex-9 in flight",
        reason_code="SESSION_BUSY",
        execution_id="aex-9",
    )
    status = error_status(err)
    assert status.code == grpc.StatusCode.FAILED_PRECONDITION
    info = _info(status)
    assert (info.reason, info.metadata[EXECUTION_ID]) == ("SESSION_BUSY", "aex-9")


def test_a_missing_resource_from_the_store_is_answered_like_the_orchestrators_own() -> None:
    # Services let the store's NotFoundError through untranslated: the edge must answer it
    # with the same code, message and ErrorInfo (naming the resource) as NotFoundError.
    ours = error_status(NotFoundError("agent execution", "aex-404"))
    theirs = error_status(store.NotFoundError("agent execution", "aex-404"))
    assert theirs.code == ours.code == grpc.StatusCode.NOT_FOUND
    assert theirs.details == ours.details == "agent execution 'aex-404' not found"
    assert _info(theirs) == _info(ours)
    assert (_info(theirs).reason, dict(_info(theirs).metadata)) == (
        "NOT_FOUND",
        {"kind": "agent execution", "key": "aex-404"},
    )


def test_other_errors_get_reasons_from_their_type() -> None:
    assert error_reason(WorkflowStartError("wex-1", "down")) == "WORKFLOW_START"
    assert error_reason(NotFoundError("agent", "x")) == "NOT_FOUND"
    illegal = IllegalTransitionError(
        "aex-2", common_pb2.EXECUTION_PHASE_COMPLETED, common_pb2.EXECUTION_PHASE_RUNNING
    )
    status = error_status(illegal)
    assert status.code == grpc.StatusCode.FAILED_PRECONDITION
    assert _info(status).reason == "ILLEGAL_TRANSITION"
    assert _info(status).metadata[EXECUTION_ID] == "aex-2"


def test_unexpected_errors_are_internal_without_their_text() -> None:
    status = error_status(OverflowError("secret path /var/x"))
    assert status.code == grpc.StatusCode.INTERNAL
    assert "secret" not in status.details
    assert _info(status).reason == "INTERNAL"


def test_messages_quote_at_most_a_bounded_prefix_of_the_input() -> None:
    key = "k" * 20_000
    for err in (
        NotFoundError("agent", key),
        store.NotFoundError("agent", key),
        store.AlreadyExistsError("agent", key),
        InvalidArgumentError(f"labels[{key}]", f"'{key}' is bad"),
    ):
        status = error_status(err)
        assert len(status.details) < 1200, type(err)
        # The whole status must fit in gRPC's default 8 KB metadata limit.
        assert len(status.trailing_metadata[0][1]) < 4000, type(err)
