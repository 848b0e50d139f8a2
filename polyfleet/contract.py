"""Names of the activity contract shared by the orchestrator and every runner.

Temporal routes by activity *name* and *task queue*; these strings are the
polyglot boundary, so they are exact and case-sensitive (see docs/contract.md).
"""

from __future__ import annotations

ENSURE_THREAD = "EnsureThread"
EXECUTE_GRAPHTON = "ExecuteGraphton"
EXECUTE_WORKFLOW = "ExecuteWorkflow"
UPDATE_STATUS = "UpdateStatus"

RUNNER_ACTIVITIES = (ENSURE_THREAD, EXECUTE_GRAPHTON, EXECUTE_WORKFLOW)

AGENT_EXECUTION_WORKFLOW = "AgentExecutionWorkflow"
WORKFLOW_EXECUTION_WORKFLOW = "WorkflowExecutionWorkflow"

# Stable error type of an execution whose agent answer, workflow output or task result is
# larger than the orchestrator accepts (POLYFLEET_MAX_OUTPUT_BYTES): it fails the execution
# instead of making it unreadable.
OUTPUT_TOO_LARGE = "OutputTooLarge"

# Workflow memo key holding the runner task queue of an execution.
MEMO_ACTIVITY_TASK_QUEUE = "activityTaskQueue"

# Encoding every activity input and output travels in (docs/contract.md, "Payloads").
PAYLOAD_ENCODING = "json/protobuf"

# Error type of an execution whose runner returned a result the workflow cannot decode
# (another encoding, another message type, malformed data): a runner bug no retry fixes.
INVALID_ACTIVITY_RESULT = "InvalidActivityResult"


def agent_workflow_id(execution_id: str) -> str:
    """Deterministic Temporal workflow ID of an agent execution."""
    return f"agent-execution/{execution_id}"


def workflow_execution_workflow_id(execution_id: str) -> str:
    """Deterministic Temporal workflow ID of a workflow execution."""
    return f"workflow-execution/{execution_id}"


def user_message_id(execution_id: str) -> str:
    """ID of an agent execution's user message, in its status and in its session's thread."""
    return f"{execution_id}/user"
