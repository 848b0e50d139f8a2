"""A DSL `raise` and an HTTP call's error reach the task and the execution as data."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from orchestrator.workflows.common import describe_failure
from polyfleet.dsl import COMMUNICATION, WorkflowError
from runner.workflow_host import problem_error, task_status
from tests.unit.dsl.support import Hooks, doc, run

RAISE = (
    "do:\n"
    "  - check:\n"
    "      raise:\n"
    "        error:\n"
    "          type: https://example.com/errors/bad-order\n"
    "          status: 422\n"
    "          title: Bad order\n"
    "          detail: order is empty\n"
)


async def test_a_raise_lands_structured_in_the_task_error() -> None:
    hooks = Hooks()
    with pytest.raises(WorkflowError):
        await run(doc(RAISE), {}, hooks=hooks)
    status = task_status(hooks.last("/do/0/check"))
    error = status.error
    assert error.type == "https://example.com/errors/bad-order"
    assert (error.status, error.title, error.detail) == (422, "Bad order", "order is empty")
    assert error.instance == "/do/0/check"
    assert error.step == "/do/0/check"


def test_the_execution_error_carries_the_problem_sent_as_failure_details() -> None:
    problem = WorkflowError(
        COMMUNICATION, 503, title="HTTP 503", detail="GET /x answered 503", instance="/do/1/a"
    )
    # What the workflow host raises, as the orchestrator's workflow receives it.
    failure = ApplicationError(str(problem), problem.as_dict(), type="WorkflowError")
    error = describe_failure("ExecuteWorkflow", "queue", failure)
    assert error.type == "WorkflowError"
    assert (error.status, error.title, error.detail, error.instance) == (
        503,
        "HTTP 503",
        "GET /x answered 503",
        "/do/1/a",
    )


def test_failures_without_a_problem_leave_the_fields_empty() -> None:
    error = describe_failure("EnsureThread", "q", ApplicationError("no", type="AgentNotFound"))
    assert (error.status, error.title, error.detail, error.instance) == (0, "", "", "")
    weird = describe_failure("ExecuteWorkflow", "q", ApplicationError("x", "not a dict"))
    assert weird.status == 0


def test_a_status_outside_int32_is_dropped_not_fatal() -> None:
    error = problem_error(WorkflowError("https://e/x", 2**40), type="t", step="/do/0/a")
    assert error.status == 0
