"""polyfleet's vocabulary: one definition of each name the orchestrator, runners and clients share.

The activity and workflow names are the polyglot boundary: Temporal routes by activity *name*
and *task queue*, so they are exact and case-sensitive (see docs/contract.md). The rest is the
lifecycle's vocabulary (terminal phases, ID prefixes, error types) and the activity contract's
default timeouts, which the settings start from and the workflows fall back to.
"""

from __future__ import annotations

import re
from datetime import timedelta

from polyfleet.quoting import quote
from polyfleet.v1 import agent_execution_pb2, common_pb2, workflow_execution_pb2

# --- activities and workflows ----------------------------------------------------------------

ENSURE_THREAD = "EnsureThread"
EXECUTE_GRAPHTON = "ExecuteGraphton"
EXECUTE_WORKFLOW = "ExecuteWorkflow"
UPDATE_STATUS = "UpdateStatus"

RUNNER_ACTIVITIES = (ENSURE_THREAD, EXECUTE_GRAPHTON, EXECUTE_WORKFLOW)

AGENT_EXECUTION_WORKFLOW = "AgentExecutionWorkflow"
WORKFLOW_EXECUTION_WORKFLOW = "WorkflowExecutionWorkflow"

# Workflow memo key holding the runner task queue of an execution.
MEMO_ACTIVITY_TASK_QUEUE = "activityTaskQueue"

# The one rule of a runner task queue name (an agent's or workflow's runner_queue, a runner's
# queue lists): letters, digits and "-_.:/", starting with a letter or digit, so no
# whitespace, control character or Temporal-reserved "/_sys/" prefix; at most 200
# characters, well inside Temporal's 1000-byte limit on names (the charset is ASCII, so
# characters are bytes), leaving room for the names a pool's tooling derives from it.
MAX_TASK_QUEUE_CHARS = 200
_TASK_QUEUE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*")


def task_queue_problem(name: str) -> str:
    """What is wrong with ``name`` as a runner task queue; "" when nothing is.

    Callers check a name only when it is set: an unset (empty) runner_queue means the
    configured default queue.
    """
    if not name:
        return "must not be empty"
    if len(name) > MAX_TASK_QUEUE_CHARS:
        return f"is {len(name)} characters; the limit is {MAX_TASK_QUEUE_CHARS}"
    if not _TASK_QUEUE_RE.fullmatch(name):
        return (
            f"{quote(name)} must be letters, digits and '-', '_', '.', ':', "
            "'/', starting with a letter or digit (no spaces or control characters)"
        )
    return ""


# Encoding every activity input and output travels in (docs/contract.md, "Payloads").
PAYLOAD_ENCODING = "json/protobuf"

# --- the activity contract's defaults (docs/contract.md, "Queues and names") ------------------
# Every one is a default that the orchestrator's settings can change; the settings start from
# these, and a workflow started without a value (an older history) falls back to them.

SCHEDULE_TO_START = timedelta(minutes=1)
ENSURE_THREAD_START_TO_CLOSE = timedelta(seconds=30)
EXECUTE_GRAPHTON_START_TO_CLOSE = timedelta(minutes=10)
EXECUTE_WORKFLOW_START_TO_CLOSE = timedelta(minutes=30)
HEARTBEAT_TIMEOUT = timedelta(seconds=30)
UPDATE_STATUS_START_TO_CLOSE = timedelta(seconds=30)
AGENT_RUN_TIMEOUT = timedelta(minutes=10)
WORKFLOW_RUN_TIMEOUT = timedelta(minutes=30)

# --- error types -----------------------------------------------------------------------------
# The stable ``type`` of non-retryable ApplicationErrors and of ``ExecutionError.type``.
# Types raised by the Python runner's agent runtime only (model and tool errors) live in
# runner/graphton/errors.py; these are the ones more than one part names.

# The runner reported progress for an execution that is already terminal (e.g. cancelled).
EXECUTION_CLOSED = "ExecutionClosed"
# A workflow document the DSL cannot run (the API validates first; a runner re-checks).
INVALID_WORKFLOW_DEFINITION = "InvalidWorkflowDefinition"
# An uncaught error of a workflow document (a DSL `raise`, a failed task).
WORKFLOW_ERROR = "WorkflowError"
# A runner that does not implement what it was asked to run.
NOT_IMPLEMENTED = "NotImplemented"
# An agent answer, workflow output or task result larger than the orchestrator accepts
# (POLYFLEET_MAX_OUTPUT_BYTES): it fails the execution instead of making it unreadable.
OUTPUT_TOO_LARGE = "OutputTooLarge"
# A runner returned a result the workflow cannot decode (another encoding, another message
# type, malformed data): a runner bug no retry fixes.
INVALID_ACTIVITY_RESULT = "InvalidActivityResult"
# Set by the workflow when an activity timed out or failed without a type of its own.
ACTIVITY_TIMEOUT = "ActivityTimeout"
ACTIVITY_FAILED = "ActivityFailed"
# Set by the API when Temporal refused to start the execution's workflow.
WORKFLOW_START_FAILED = "WorkflowStartFailed"

# Failures of ExecuteWorkflow that another attempt cannot fix.
WORKFLOW_NON_RETRYABLE = (
    INVALID_WORKFLOW_DEFINITION,
    WORKFLOW_ERROR,
    EXECUTION_CLOSED,
    NOT_IMPLEMENTED,
)


def oversized_outputs(update: common_pb2.ExecutionUpdate, limit: int) -> list[tuple[str, str, int]]:
    """The outputs of a report larger than ``limit`` bytes (POLYFLEET_MAX_OUTPUT_BYTES).

    One definition of what counts as an output and how it is measured, for the runner that
    fails before sending one and the orchestrator that refuses one.

    Args:
        update: A progress report.
        limit: The limit in bytes; 0 means none.

    Returns:
        ``(field path, what it is, size in bytes)`` of each oversized output, in field order.

    """
    if not limit:
        return []
    sizes = [("update.output_text", "the final answer", len(update.output_text.encode()))]
    sizes += [
        (f"update.messages[{i}].content", f"message {message.id}", len(message.content.encode()))
        for i, message in enumerate(update.messages)
    ]
    if update.HasField("output"):
        sizes.append(("update.output", "the structured output", update.output.ByteSize()))
    if update.HasField("workflow_output"):
        sizes.append(
            ("update.workflow_output", "the workflow output", update.workflow_output.ByteSize())
        )
    return [(field, what, size) for field, what, size in sizes if size > limit]


# --- executions ------------------------------------------------------------------------------

# Either kind of execution: both have an id and a status with a phase.
Execution = agent_execution_pb2.AgentExecution | workflow_execution_pb2.WorkflowExecution

# ID prefixes (``aex-…``, ``wex-…``) tell the two kinds of execution apart.
AGENT_EXECUTION_ID_PREFIX = "aex"
WORKFLOW_EXECUTION_ID_PREFIX = "wex"
# Sessions (``ses-…``).
SESSION_ID_PREFIX = "ses"

#: Phases an execution never leaves (docs/operations.md, "Lifecycle guarantees").
TERMINAL_PHASES: frozenset[common_pb2.ExecutionPhase.ValueType] = frozenset(
    {
        common_pb2.EXECUTION_PHASE_COMPLETED,
        common_pb2.EXECUTION_PHASE_FAILED,
        common_pb2.EXECUTION_PHASE_CANCELLED,
    }
)

# ExecutionPhase enum names start with it; users see the rest (``RUNNING``).
PHASE_NAME_PREFIX = "EXECUTION_PHASE_"


def is_terminal(phase: common_pb2.ExecutionPhase.ValueType | int) -> bool:
    """Tell whether a phase is final (COMPLETED, FAILED or CANCELLED)."""
    return phase in TERMINAL_PHASES


def phase_name(phase: common_pb2.ExecutionPhase.ValueType | int) -> str:
    """The short name of a phase, e.g. ``RUNNING``; the number when it is unknown."""
    try:
        return common_pb2.ExecutionPhase.Name(phase).removeprefix(PHASE_NAME_PREFIX)  # type: ignore[arg-type]
    except ValueError:
        return str(int(phase))


def is_workflow_execution(execution_id: str) -> bool:
    """Tell a workflow execution's ID (``wex-…``) from an agent execution's (``aex-…``)."""
    return execution_id.startswith(f"{WORKFLOW_EXECUTION_ID_PREFIX}-")


# Labels the orchestrator sets on the child agent execution of a workflow's `call: agent`
# task: the parent workflow execution's ID, and the task's ID with "." for "/".
PARENT_EXECUTION_LABEL = "polyfleet.parent-execution"
PARENT_TASK_LABEL = "polyfleet.parent-task"
# The label the orchestrator sets on an execution a workflow's schedule started: the
# workflow's name (docs/dsl.md, "schedule").
SCHEDULE_LABEL = "polyfleet.schedule"


# Temporal workflow IDs are these prefixes followed by the execution ID.
AGENT_WORKFLOW_ID_PREFIX = "agent-execution/"
WORKFLOW_EXECUTION_WORKFLOW_ID_PREFIX = "workflow-execution/"


def agent_workflow_id(execution_id: str) -> str:
    """Deterministic Temporal workflow ID of an agent execution."""
    return f"{AGENT_WORKFLOW_ID_PREFIX}{execution_id}"


def workflow_execution_workflow_id(execution_id: str) -> str:
    """Deterministic Temporal workflow ID of a workflow execution."""
    return f"{WORKFLOW_EXECUTION_WORKFLOW_ID_PREFIX}{execution_id}"


def user_message_id(execution_id: str) -> str:
    """ID of an agent execution's user message, in its status and in its session's thread."""
    return f"{execution_id}/user"


def execution_workflow_id(execution_id: str) -> str:
    """Deterministic Temporal workflow ID of either kind of execution."""
    if is_workflow_execution(execution_id):
        return workflow_execution_workflow_id(execution_id)
    return agent_workflow_id(execution_id)


def execution_of_workflow(workflow_id: str) -> str:
    """The execution ID of a workflow ID made by :func:`execution_workflow_id`, or ``""``."""
    for prefix in (AGENT_WORKFLOW_ID_PREFIX, WORKFLOW_EXECUTION_WORKFLOW_ID_PREFIX):
        if workflow_id.startswith(prefix):
            return workflow_id.removeprefix(prefix)
    return ""


# Metadata a runner sends with every RunnerService call: which activity attempt it is
# running (from its SDK's activity info) and its Temporal worker identity. When the API
# authenticates callers, the orchestrator checks them against Temporal and acts only on
# that activity's execution (docs/security.md, "Runners act only on their own work").
RUNNER_METADATA_WORKFLOW_ID = "polyfleet-workflow-id"
RUNNER_METADATA_RUN_ID = "polyfleet-run-id"
RUNNER_METADATA_ACTIVITY_ID = "polyfleet-activity-id"
RUNNER_METADATA_ATTEMPT = "polyfleet-activity-attempt"
RUNNER_METADATA_WORKER_IDENTITY = "polyfleet-worker-identity"
