"""Validation of API requests, naming the offending field."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from orchestrator.errors import InvalidArgumentError
from polyfleet.agent_rules import agent_problems, field_path
from polyfleet.contract import task_queue_problem
from polyfleet.dsl import InvalidDocumentError, load_document, validate_document
from polyfleet.quoting import quote
from polyfleet.v1 import agent_execution_pb2, agent_pb2, workflow_pb2

AGENT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
MAX_REQUEST_ID_CHARS = 200
# The ranges google.protobuf.Timestamp and Duration define; values outside them make the
# protobuf runtime raise (ValueError, OverflowError), which must never reach the edge.
_MIN_TIMESTAMP_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
_MAX_TIMESTAMP_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_DURATION_SECONDS = 315_576_000_000  # about 10,000 years
_MAX_NANOS = 999_999_999


def timestamp_nanos(value: Timestamp, field: str) -> int:
    """Unix nanoseconds of a request's Timestamp, checked against protobuf's range.

    Raises:
        InvalidArgumentError: ``seconds`` or ``nanos`` is out of range, naming which.
    """
    if not _MIN_TIMESTAMP_SECONDS <= value.seconds <= _MAX_TIMESTAMP_SECONDS:
        raise InvalidArgumentError(
            f"{field}.seconds",
            f"{value.seconds} is outside {_MIN_TIMESTAMP_SECONDS}..{_MAX_TIMESTAMP_SECONDS} "
            "(0001-01-01 to 9999-12-31)",
        )
    if not 0 <= value.nanos <= _MAX_NANOS:
        raise InvalidArgumentError(f"{field}.nanos", f"{value.nanos} is outside 0..{_MAX_NANOS}")
    return value.seconds * 1_000_000_000 + value.nanos


def duration_seconds(value: Duration, field: str) -> float:
    """Seconds of a request's Duration, checked against protobuf's range.

    Raises:
        InvalidArgumentError: ``seconds`` or ``nanos`` is out of range, or their signs
            differ, naming which.
    """
    seconds, nanos = value.seconds, value.nanos
    if not -_MAX_DURATION_SECONDS <= seconds <= _MAX_DURATION_SECONDS:
        raise InvalidArgumentError(
            f"{field}.seconds", f"{seconds} is outside ±{_MAX_DURATION_SECONDS}"
        )
    if not -_MAX_NANOS <= nanos <= _MAX_NANOS:
        raise InvalidArgumentError(f"{field}.nanos", f"{nanos} is outside ±{_MAX_NANOS}")
    if (seconds > 0 > nanos) or (seconds < 0 < nanos):
        raise InvalidArgumentError(f"{field}.nanos", "must have the sign of seconds")
    return seconds + nanos / 1_000_000_000


def validate_agent(agent: agent_pb2.Agent, field: str = "agent") -> None:
    """Check an agent definition before it is stored, with the kernel's one rule set.

    The rules are :func:`polyfleet.agent_rules.agent_problems`, the same the CLI checks
    manifests with: the API is their authority.

    Args:
        agent: The definition.
        field: Field path of the agent in the request, for error messages.

    Raises:
        InvalidArgumentError: Naming the first invalid field, and carrying every problem
            as a field violation.
    """
    problems = agent_problems(agent)
    if problems:
        raise InvalidArgumentError.of(
            [(field_path(path, field), message) for path, message in problems]
        )


def validate_create_agent_execution(
    request: agent_execution_pb2.CreateAgentExecutionRequest,
    max_message_chars: int,
) -> None:
    """Check a Create request for an agent execution.

    Raises:
        InvalidArgumentError: Naming the first invalid field.
    """
    execution = request.execution
    if not execution.agent:
        raise InvalidArgumentError("execution.agent", "must not be empty")
    if not execution.message.strip():
        raise InvalidArgumentError("execution.message", "must not be empty")
    if len(execution.message) > max_message_chars:
        raise InvalidArgumentError(
            "execution.message",
            f"is {len(execution.message)} characters; the limit is {max_message_chars} "
            "(POLYFLEET_MAX_MESSAGE_CHARS)",
        )
    validate_priority(execution.priority, "execution.priority")
    if len(request.request_id) > MAX_REQUEST_ID_CHARS:
        raise InvalidArgumentError(
            "request_id", f"is longer than {MAX_REQUEST_ID_CHARS} characters"
        )


def validate_priority(priority: int, field: str) -> None:
    """Priorities are 1 (highest) to 5; 0 means the default, 3."""
    if not 0 <= priority <= 5:
        raise InvalidArgumentError(field, f"{priority} is not in 1 (highest) .. 5")


def validate_workflow(
    definition: workflow_pb2.Workflow,
    known_agents: Iterable[str],
    field: str = "workflow",
    *,
    known_workflows: Iterable[str] | None = None,
    resolved_functions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Check a workflow resource and its Serverless Workflow document.

    A literal `run: workflow` name must be one of ``known_workflows`` (when given) and
    not the workflow's own name (a cycle). Without ``resolved_functions``, catalog and URL
    functions are checked for their syntax and catalog only; with them (each reference
    mapped to its parsed definition), each is checked as a task.

    Returns:
        The parsed document.

    Raises:
        InvalidArgumentError: Naming the field, or the JSON pointer of the first problem
            in the document (e.g. ``workflow.document/do/2/callApi/with/endpoint``).
    """
    if not AGENT_NAME.match(definition.name):
        raise InvalidArgumentError(
            f"{field}.name",
            f"{quote(definition.name)} must be 1-63 lowercase letters, digits or '-', "
            "starting with a letter",
        )
    # Unset is the configured default queue; a set one follows the kernel's queue rule.
    queue_problem = task_queue_problem(definition.runner_queue) if definition.runner_queue else ""
    if queue_problem:
        raise InvalidArgumentError(f"{field}.runner_queue", queue_problem)
    if not definition.document.strip():
        raise InvalidArgumentError(f"{field}.document", "must not be empty")
    try:
        document = load_document(definition.document)
    except InvalidDocumentError as err:
        first = err.problems[0] if err.problems else None
        pointer = first.pointer if first else ""
        raise InvalidArgumentError(f"{field}.document{pointer}", str(err)) from None
    problems = validate_document(
        document,
        known_agents=set(known_agents),
        known_workflows=None if known_workflows is None else set(known_workflows),
        workflow_name=definition.name,
        resolved_functions=resolved_functions,
    )
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InvalidArgumentError(f"{field}.document{first.pointer}", first.message + more)
    return document
