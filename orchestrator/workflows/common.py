"""Workflow-side helpers shared by the agent and workflow-execution workflows.

Everything here runs inside the workflow sandbox: deterministic, no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue, RetryPolicy
from temporalio.converter import PayloadConverter
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutError,
    TimeoutType,
)

with workflow.unsafe.imports_passed_through():
    from google.protobuf.duration_pb2 import Duration
    from google.protobuf.message import Message

    from orchestrator.errors import OrchestratorError
    from polyfleet import contract
    from polyfleet.v1 import activities_pb2, common_pb2

ENSURE_THREAD_RETRY = RetryPolicy(
    maximum_attempts=3, initial_interval=timedelta(seconds=5), backoff_coefficient=2.0
)
NO_RETRY = RetryPolicy(maximum_attempts=1)
UPDATE_STATUS_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2))


def _or(value: Duration, default: timedelta) -> timedelta:
    return value.ToTimedelta() if value.seconds or value.nanos else default


@dataclass(frozen=True)
class Policy:
    """Resolved activity timeouts and the default runner queue of one execution."""

    default_queue: str
    schedule_to_start: timedelta
    ensure_thread_start_to_close: timedelta
    execute_graphton_start_to_close: timedelta
    execute_workflow_start_to_close: timedelta
    heartbeat: timedelta
    update_status_start_to_close: timedelta
    execute_workflow_max_attempts: int

    @classmethod
    def resolve(cls, policy: activities_pb2.ActivityPolicy, fallback_queue: str) -> Policy:
        """Fill unset fields of the frozen policy with the contract's defaults."""
        return cls(
            default_queue=policy.default_activity_task_queue or fallback_queue,
            schedule_to_start=_or(policy.schedule_to_start_timeout, contract.SCHEDULE_TO_START),
            ensure_thread_start_to_close=_or(
                policy.ensure_thread_start_to_close_timeout, contract.ENSURE_THREAD_START_TO_CLOSE
            ),
            execute_graphton_start_to_close=_or(
                policy.execute_graphton_start_to_close_timeout,
                contract.EXECUTE_GRAPHTON_START_TO_CLOSE,
            ),
            execute_workflow_start_to_close=_or(
                policy.execute_workflow_start_to_close_timeout,
                contract.EXECUTE_WORKFLOW_START_TO_CLOSE,
            ),
            heartbeat=_or(policy.heartbeat_timeout, contract.HEARTBEAT_TIMEOUT),
            update_status_start_to_close=_or(
                policy.update_status_start_to_close_timeout, contract.UPDATE_STATUS_START_TO_CLOSE
            ),
            execute_workflow_max_attempts=policy.execute_workflow_max_attempts or 3,
        )

    def runner_queue(self) -> str:
        """The runner queue from the memo, else the default."""
        queue = workflow.memo_value(
            contract.MEMO_ACTIVITY_TASK_QUEUE, default=self.default_queue, type_hint=str
        )
        return queue or self.default_queue


def is_cancellation(err: BaseException) -> bool:
    """Whether an error means the workflow (and so its activity) was cancelled."""
    return isinstance(err, ActivityError) and isinstance(err.cause, CancelledError)


def _copy_problem(details: Sequence[Any], error: common_pb2.ExecutionError) -> None:
    # A workflow error (DSL `raise`, HTTP call) sends its RFC 7807 problem as the first
    # detail; clients then read status, title, detail and instance as data.
    problem = details[0] if details else None
    if not isinstance(problem, dict):
        return
    status = problem.get("status")
    if isinstance(status, int) and 0 <= status <= 2**31 - 1:
        error.status = status
    for name in ("title", "detail", "instance"):
        value = problem.get(name)
        if isinstance(value, str):
            setattr(error, name, value)


def describe_failure(step: str, queue: str, err: BaseException) -> common_pb2.ExecutionError:
    """Say which step failed and why, in words an operator can act on."""
    cause = err.cause if isinstance(err, ActivityError) and err.cause else err
    if isinstance(cause, TimeoutError):
        kind = {
            TimeoutType.SCHEDULE_TO_START: (
                f"no runner picked up {step} from task queue '{queue}' before the "
                f"schedule-to-start timeout; is a runner polling '{queue}'?"
            ),
            TimeoutType.START_TO_CLOSE: (
                f"{step} on task queue '{queue}' did not finish before its start-to-close timeout"
            ),
            TimeoutType.HEARTBEAT: (
                f"{step} on task queue '{queue}' stopped heartbeating; its runner was probably lost"
            ),
            TimeoutType.SCHEDULE_TO_CLOSE: (
                f"{step} on task queue '{queue}' did not finish before its "
                "schedule-to-close timeout"
            ),
        }.get(cause.type or TimeoutType.START_TO_CLOSE, f"{step} timed out on task queue '{queue}'")
        return common_pb2.ExecutionError(type=contract.ACTIVITY_TIMEOUT, message=kind, step=step)
    if isinstance(cause, ApplicationError):
        error = common_pb2.ExecutionError(
            type=cause.type or contract.ACTIVITY_FAILED,
            message=f"{step} failed on task queue '{queue}': {cause.message}",
            step=step,
        )
        _copy_problem(cause.details, error)
        return error
    message = str(cause) or type(cause).__name__
    return common_pb2.ExecutionError(
        type=contract.ACTIVITY_FAILED,
        message=f"{step} failed on task queue '{queue}': {message}",
        step=step,
    )


async def update_status(
    policy: Policy, execution_id: str, key: str, update: common_pb2.ExecutionUpdate
) -> activities_pb2.UpdateStatusOutput:
    """Persist a status change through the local UpdateStatus activity.

    The report ID is derived from the workflow run and ``key``, so a retried
    local activity or a replayed workflow task applies it once.
    """
    info = workflow.info()
    output: activities_pb2.UpdateStatusOutput = await workflow.execute_local_activity(
        contract.UPDATE_STATUS,
        activities_pb2.UpdateStatusInput(
            execution_id=execution_id, report_id=f"{info.run_id}/{key}", update=update
        ),
        result_type=activities_pb2.UpdateStatusOutput,
        start_to_close_timeout=policy.update_status_start_to_close,
        retry_policy=UPDATE_STATUS_RETRY,
    )
    return output


def failure_update(
    execution_id: str, error: common_pb2.ExecutionError
) -> common_pb2.ExecutionUpdate:
    """A FAILED update with a system message saying what failed and why."""
    return common_pb2.ExecutionUpdate(
        phase=common_pb2.EXECUTION_PHASE_FAILED,
        error=error,
        messages=[
            common_pb2.Message(
                id=f"{execution_id}/failure",
                role=common_pb2.MESSAGE_ROLE_SYSTEM,
                content=f"Execution failed in {error.step} ({error.type}): {error.message}",
            )
        ],
    )


def cancelled_update(execution_id: str, step: str) -> common_pb2.ExecutionUpdate:
    """A CANCELLED update with a system message naming the interrupted step."""
    return common_pb2.ExecutionUpdate(
        phase=common_pb2.EXECUTION_PHASE_CANCELLED,
        messages=[
            common_pb2.Message(
                id=f"{execution_id}/cancelled",
                role=common_pb2.MESSAGE_ROLE_SYSTEM,
                content=f"Execution cancelled during {step}.",
            )
        ],
    )


_T = TypeVar("_T")
_M = TypeVar("_M", bound="Message")

# Longest text from a foreign payload (metadata, converter error) quoted in an error.
_QUOTE_LIMIT = 300


def _shorten(text: str) -> str:
    return text if len(text) <= _QUOTE_LIMIT else text[:_QUOTE_LIMIT] + "..."


class InvalidActivityResultError(OrchestratorError):
    """A runner returned an activity result the workflow cannot decode.

    A runner that does not follow the activity contract (another encoding such as
    ``json/plain``, another message type, malformed data) causes it; no retry can fix it.
    """

    def __init__(
        self, activity: str, queue: str, payload: Payload, expected: type[Message], reason: str
    ) -> None:
        """Describe the bad result of ``activity`` on ``queue``.

        Args:
            activity: The activity name.
            queue: The runner task queue it ran on.
            payload: The result payload as received.
            expected: The protobuf message the contract specifies.
            reason: Why decoding failed.

        """
        self.activity = activity
        self.queue = queue
        self.encoding = _shorten(payload.metadata.get("encoding", b"").decode(errors="replace"))
        message_type = _shorten(payload.metadata.get("messageType", b"").decode(errors="replace"))
        received = f"encoding '{self.encoding or '<none>'}'"
        if message_type:
            received += f", messageType '{message_type}'"
        super().__init__(
            f"{activity} on task queue '{queue}' returned a result the workflow cannot decode "
            f"({received}; the contract is {contract.PAYLOAD_ENCODING} "
            f"'{expected.DESCRIPTOR.full_name}'): {_shorten(reason)}. The runner polling "
            f"'{queue}' does not follow the activity contract (docs/contract.md)."
        )

    def execution_error(self) -> common_pb2.ExecutionError:
        """The error recorded in the execution's status."""
        return common_pb2.ExecutionError(
            type=contract.INVALID_ACTIVITY_RESULT, message=str(self), step=self.activity
        )


def decode_result(
    converter: PayloadConverter, activity: str, queue: str, payload: Payload, result_type: type[_M]
) -> _M:
    """Decode an activity result, turning any failure into InvalidActivityResultError.

    Raises:
        InvalidActivityResultError: The payload is not a ``result_type``.

    """
    try:
        value = converter.from_payload(payload, result_type)
    except Exception as err:  # whatever the converter raises, the runner sent it
        reason = str(err) or type(err).__name__
        if err.__cause__ is not None:
            reason += f": {err.__cause__}"
        raise InvalidActivityResultError(activity, queue, payload, result_type, reason) from err
    if not isinstance(value, result_type):
        # The protobuf converters decode whatever messageType names, not the type asked for.
        reason = f"it decodes to {type(value).__name__}"
        raise InvalidActivityResultError(activity, queue, payload, result_type, reason)
    return value


class Steps:
    """Runs a workflow's activities and persists the outcome through UpdateStatus.

    Both execution workflows share this: COMPLETED after the body; on failure FAILED
    with a system message naming the step and the cause, then an ApplicationError so
    Temporal shows the failure too; on cancellation CANCELLED, then re-raise.
    """

    def __init__(self, policy: Policy, execution_id: str) -> None:
        self.policy = policy
        self.execution_id = execution_id
        self.queue = policy.runner_queue()
        # Name of the activity running now, for failure and cancellation messages.
        self.step = ""

    async def execute(
        self, activity: str, arg: Message, result_type: type[_M], **options: Any
    ) -> _M:
        """Run a runner activity on the execution's runner queue; return its decoded result.

        The result arrives raw and is decoded here rather than by the SDK: a result the SDK
        cannot decode fails the workflow *task*, which Temporal retries forever, so the
        execution would stay PENDING without an error until its run timeout.

        Args:
            activity: The activity name (also recorded as the current step).
            arg: The activity's input message.
            result_type: The output message the contract specifies.
            **options: Timeouts, retry policy and cancellation type.

        Raises:
            InvalidActivityResultError: The runner returned something else.

        """
        self.step = activity
        raw: RawValue = await workflow.execute_activity(
            activity, arg, result_type=RawValue, task_queue=self.queue, **options
        )
        converter = workflow.payload_converter()
        return decode_result(converter, activity, self.queue, raw.payload, result_type)

    async def run(self, body: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``body`` and persist the terminal state it leads to."""
        policy, execution_id = self.policy, self.execution_id
        try:
            result = await body()
        except asyncio.CancelledError:
            await update_status(
                policy, execution_id, "cancelled", cancelled_update(execution_id, self.step)
            )
            raise
        except ActivityError as err:
            if is_cancellation(err):
                await update_status(
                    policy, execution_id, "cancelled", cancelled_update(execution_id, self.step)
                )
                raise asyncio.CancelledError() from err
            await self._fail(describe_failure(self.step, self.queue, err), err)
        except InvalidActivityResultError as err:
            await self._fail(err.execution_error(), err)
        await update_status(
            policy,
            execution_id,
            "completed",
            common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_COMPLETED),
        )
        return result

    async def _fail(self, error: common_pb2.ExecutionError, cause: BaseException) -> NoReturn:
        """Persist FAILED with ``error``, then fail the workflow with it."""
        workflow.logger.warning("execution %s failed: %s", self.execution_id, error.message)
        await update_status(
            self.policy, self.execution_id, "failed", failure_update(self.execution_id, error)
        )
        raise ApplicationError(error.message, type=error.type, non_retryable=True) from cause
