"""The one rule of a runner queue name (runner pools), where the kernel and settings apply it."""

from __future__ import annotations

import pytest

from polyfleet import contract
from polyfleet.agent_rules import agent_problems
from polyfleet.config import ConfigError, RunnerSettings
from polyfleet.v1 import agent_pb2

GOOD = ["gpu-runners", "a", "tenant-a/agents", "pool:eu.west_1", "Q" * 200, "0day"]
BAD = [
    ("", "must not be empty"),
    ("gpu runners", "must be letters"),
    (" gpu", "must be letters"),
    ("gpu\n", "must be letters"),
    ("gpu\x00", "must be letters"),
    ("gpu,cpu", "must be letters"),
    ("-gpu", "starting with a letter or digit"),
    ("/_sys/gpu", "starting with a letter or digit"),
    ("gpü", "must be letters"),
    ("q" * 201, "is 201 characters; the limit is 200"),
]


@pytest.mark.parametrize("name", GOOD)
def test_sane_queue_names_pass(name: str) -> None:
    assert contract.task_queue_problem(name) == ""


@pytest.mark.parametrize(("name", "says"), BAD)
def test_bad_queue_names_are_refused_saying_why(name: str, says: str) -> None:
    assert says in contract.task_queue_problem(name)


def test_a_long_name_is_not_echoed_whole() -> None:
    problem = contract.task_queue_problem("q" * 10_000 + " ")
    assert len(problem) < 200


def test_agent_rules_name_runner_queue_only_when_set_and_bad() -> None:
    agent = agent_pb2.Agent(name="gpu", model=agent_pb2.ModelConfig(provider="openai", model="m"))
    assert agent_problems(agent) == []
    agent.runner_queue = "gpu-runners"
    assert agent_problems(agent) == []
    agent.runner_queue = "gpu runners"
    ((path, message),) = agent_problems(agent)
    assert path == ("runner_queue",)
    assert "must be letters" in message


def test_runner_queue_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RunnerSettings().agent_queues == []
    assert RunnerSettings().workflow_queues == []
    monkeypatch.setenv(
        "POLYFLEET_RUNNER_AGENT_QUEUES", " agent_execution_runner, gpu-runners,,gpu-runners"
    )
    monkeypatch.setenv("POLYFLEET_RUNNER_WORKFLOW_QUEUES", '["tenant-a/workflows"]')
    settings = RunnerSettings()
    assert settings.agent_queues == ["agent_execution_runner", "gpu-runners"]
    assert settings.workflow_queues == ["tenant-a/workflows"]


def test_a_bad_queue_in_a_runner_list_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYFLEET_RUNNER_AGENT_QUEUES", "gpu-runners,-bad")
    with pytest.raises(ConfigError, match=r"^POLYFLEET_RUNNER_AGENT_QUEUES=.*starting with a"):
        RunnerSettings()
