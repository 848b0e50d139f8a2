"""Who did what in the ``get`` output: creators, updaters and each transition's actor."""

from __future__ import annotations

from polyfleet.cli.views import (
    describe_agent,
    describe_execution,
    describe_workflow,
    describe_workflow_execution,
    format_actor,
)
from polyfleet.v1 import (
    agent_execution_pb2,
    agent_pb2,
    common_pb2,
    workflow_execution_pb2,
    workflow_pb2,
)

ALICE = common_pb2.Actor(subject="alice", role="operator", via="token")
ANONYMOUS = common_pb2.Actor(subject="anonymous", via="none")
SYSTEM = common_pb2.Actor(subject="polyfleet-orchestrator", via="system")


def test_format_actor_names_the_role_or_else_how_the_caller_was_identified() -> None:
    assert format_actor(ALICE) == "alice (operator)"
    assert format_actor(ANONYMOUS) == "anonymous (none)"
    assert format_actor(common_pb2.Actor()) == "-"


def _transitions() -> list[common_pb2.PhaseTransition]:
    return [
        common_pb2.PhaseTransition(
            from_phase=common_pb2.EXECUTION_PHASE_PENDING,
            to_phase=common_pb2.EXECUTION_PHASE_RUNNING,
            source="runner",
            actor=ALICE,
        ),
        common_pb2.PhaseTransition(
            from_phase=common_pb2.EXECUTION_PHASE_RUNNING,
            to_phase=common_pb2.EXECUTION_PHASE_COMPLETED,
            source="orchestrator",
            reason="done",
            actor=SYSTEM,
        ),
    ]


EXPECTED = [
    "Transitions:",
    "  PENDING -> RUNNING at - by alice (operator) via runner",
    "  RUNNING -> COMPLETED at - by polyfleet-orchestrator (system) via orchestrator: done",
]


def test_executions_get_shows_the_creator_and_every_transitions_actor() -> None:
    agent_run = agent_execution_pb2.AgentExecution(id="aex-1", created_by=ANONYMOUS)
    agent_run.status.transitions.extend(_transitions())
    workflow_run = workflow_execution_pb2.WorkflowExecution(id="wex-1", created_by=ANONYMOUS)
    workflow_run.status.transitions.extend(_transitions())
    for text in (describe_execution(agent_run), describe_workflow_execution(workflow_run)):
        lines = text.splitlines()
        assert any(line.split() == ["Created", "by:", "anonymous", "(none)"] for line in lines)
        start = lines.index("Transitions:")
        assert lines[start : start + 3] == EXPECTED


def test_agents_and_workflows_get_show_the_creator_and_last_updater() -> None:
    agent = agent_pb2.Agent(name="a", created_by=ALICE, updated_by=ANONYMOUS)
    workflow = workflow_pb2.Workflow(name="w", created_by=ALICE, updated_by=ANONYMOUS)
    for text in (describe_agent(agent), describe_workflow(workflow)):
        lines = [line.split() for line in text.splitlines()]
        assert ["Created", "by:", "alice", "(operator)"] in lines
        assert ["Updated", "by:", "anonymous", "(none)"] in lines
