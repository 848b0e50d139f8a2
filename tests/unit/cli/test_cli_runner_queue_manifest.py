"""``spec.runnerQueue`` of Agent and Workflow manifests: mapped, checked, rendered back."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyfleet.manifest import (
    ManifestError,
    agent_to_manifest,
    parse_resources,
    workflow_to_manifest,
)
from polyfleet.v1 import agent_pb2, workflow_pb2

AGENT = """\
apiVersion: polyfleet/v1
kind: Agent
metadata:
  name: gpu
spec:
  model:
    provider: scripted
    scripted: {{defaultReply: hi}}
  runnerQueue: {queue}
"""
WORKFLOW = """\
apiVersion: polyfleet/v1
kind: Workflow
metadata:
  name: pooled
spec:
  runnerQueue: {queue}
  document:
    document: {{dsl: "1.0.0", namespace: demo, name: pooled, version: "1.0.0"}}
    do:
      - one:
          set: {{a: 1}}
"""


def test_agent_runner_queue_maps_to_the_message_and_back() -> None:
    (agent,) = parse_resources(AGENT.format(queue="gpu-runners"))
    assert isinstance(agent, agent_pb2.Agent)
    assert agent.runner_queue == "gpu-runners"
    assert agent_to_manifest(agent)["spec"]["runnerQueue"] == "gpu-runners"


def test_workflow_runner_queue_maps_to_the_message_and_back() -> None:
    (workflow,) = parse_resources(WORKFLOW.format(queue="tenant-a/workflows"))
    assert isinstance(workflow, workflow_pb2.Workflow)
    assert workflow.runner_queue == "tenant-a/workflows"
    assert workflow_to_manifest(workflow)["spec"]["runnerQueue"] == "tenant-a/workflows"


def test_without_runner_queue_the_default_applies_and_none_is_rendered() -> None:
    text = AGENT.replace("  runnerQueue: {queue}\n", "").format()
    (agent,) = parse_resources(text)
    assert isinstance(agent, agent_pb2.Agent)
    assert agent.runner_queue == ""
    assert "runnerQueue" not in agent_to_manifest(agent)["spec"]


@pytest.mark.parametrize("template", [AGENT, WORKFLOW], ids=["agent", "workflow"])
@pytest.mark.parametrize(
    ("queue", "says"),
    [('"gpu runners"', "must be letters"), ('""', "must not be empty"), ("-gpu", "must be")],
    ids=["space", "empty", "dash"],
)
def test_a_bad_runner_queue_names_the_field_and_its_line(
    template: str, queue: str, says: str, tmp_path: Path
) -> None:
    text = template.format(queue=queue)
    with pytest.raises(ManifestError) as info:
        parse_resources(text, tmp_path / "pool.yaml")
    error = info.value
    assert error.field == "spec.runnerQueue"
    assert error.line == text.splitlines().index(f"  runnerQueue: {queue}") + 1
    assert says in error.message
