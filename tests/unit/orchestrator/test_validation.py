"""Agent validation names the offending field."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.protobuf.struct_pb2 import Struct

from orchestrator.errors import InvalidArgumentError
from orchestrator.validation import validate_agent
from polyfleet.v1 import agent_pb2


def _agent() -> agent_pb2.Agent:
    return agent_pb2.Agent(
        name="helper",
        secrets=["OPENAI_API_KEY", "TOKEN"],
        model=agent_pb2.ModelConfig(
            provider="openai", model="gpt-test", api_key_secret="OPENAI_API_KEY"
        ),
        mcp_servers=[
            agent_pb2.McpServer(
                name="files", stdio=agent_pb2.McpStdio(command="srv", env={"T": "${TOKEN}"})
            )
        ],
        sub_agents=[agent_pb2.SubAgent(name="researcher", description="finds things")],
    )


def test_a_full_valid_agent_passes() -> None:
    validate_agent(_agent())


def _bad_schema(a: agent_pb2.Agent) -> None:
    schema = Struct()
    schema.update({"type": "nonsense"})
    a.output_schema.CopyFrom(schema)


CASES: list[tuple[str, Callable[[agent_pb2.Agent], None]]] = [
    ("agent.model.provider", lambda a: setattr(a.model, "provider", "magic")),
    ("agent.model.model", lambda a: a.model.ClearField("model")),
    ("agent.model.api_key_secret", lambda a: setattr(a.model, "api_key_secret", "OTHER")),
    ("agent.model.base_url", lambda a: setattr(a.model, "base_url", "ftp://x")),
    ("agent.mcp_servers[0]", lambda a: a.mcp_servers[0].ClearField("stdio")),
    ("agent.mcp_servers[1].name", lambda a: a.mcp_servers.add().CopyFrom(a.mcp_servers[0])),
    ("agent.mcp_servers[0].stdio.env[T]", lambda a: a.mcp_servers[0].stdio.env.update(T="${NOPE}")),
    ("agent.sub_agents[0].description", lambda a: a.sub_agents[0].ClearField("description")),
    ("agent.sub_agents[0].name", lambda a: setattr(a.sub_agents[0], "name", "has space")),
    ("agent.graph", lambda a: setattr(a, "graph", "no-colon")),
    ("agent.output_schema[type]", _bad_schema),
    ("agent.limits.max_steps", lambda a: setattr(a.limits, "max_steps", 5000)),
    ("agent.secrets[2]", lambda a: a.secrets.append("bad-name")),
]


@pytest.mark.parametrize(("field", "mutate"), CASES, ids=[c[0] for c in CASES])
def test_each_invalid_field_is_named(field: str, mutate: Callable[[agent_pb2.Agent], None]) -> None:
    agent = _agent()
    mutate(agent)
    with pytest.raises(InvalidArgumentError) as raised:
        validate_agent(agent)
    assert raised.value.field == field
