"""The one rule set of agent definitions: problems by proto field path."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.protobuf.struct_pb2 import Struct

from polyfleet.agent_rules import LITERAL_CREDENTIAL, Key, agent_problems, field_path
from polyfleet.manifest.rules import manifest_loc
from polyfleet.v1 import agent_pb2

SECRET_VALUE = "sk-live-0123456789"


def _agent() -> agent_pb2.Agent:
    return agent_pb2.Agent(
        name="helper",
        secrets=["OPENAI_API_KEY", "TOKEN"],
        model=agent_pb2.ModelConfig(
            provider="openai", model="gpt-test", api_key_secret="OPENAI_API_KEY"
        ),
        mcp_servers=[
            agent_pb2.McpServer(
                name="files",
                stdio=agent_pb2.McpStdio(command="{python}", env={"API_TOKEN": "${TOKEN}"}),
            ),
            agent_pb2.McpServer(
                name="remote",
                http=agent_pb2.McpHttp(
                    url="http://127.0.0.1:9/mcp", headers={"Authorization": "Bearer ${TOKEN}"}
                ),
            ),
        ],
        sub_agents=[agent_pb2.SubAgent(name="researcher", description="finds things")],
    )


def _paths(agent: agent_pb2.Agent) -> list[str]:
    return [field_path(path) for path, _ in agent_problems(agent)]


def test_a_full_valid_agent_has_no_problems() -> None:
    assert agent_problems(_agent()) == []


def test_a_literal_credential_in_stdio_env_is_named_without_its_value() -> None:
    agent = _agent()
    agent.mcp_servers[0].stdio.env["OPENAI_API_KEY"] = SECRET_VALUE

    found = agent_problems(agent)

    assert found == [(("mcp_servers", 0, "stdio", "env", "OPENAI_API_KEY"), LITERAL_CREDENTIAL)]
    assert isinstance(found[0][0][-1], Key)
    assert field_path(found[0][0], "agent") == "agent.mcp_servers[0].stdio.env[OPENAI_API_KEY]"
    assert SECRET_VALUE not in repr(found)


@pytest.mark.parametrize("header", ["Authorization", "proxy-authorization", "Cookie", "X-Api-Key"])
def test_a_literal_credential_header_is_named(header: str) -> None:
    agent = _agent()
    agent.mcp_servers[1].http.headers[header] = SECRET_VALUE

    assert agent_problems(agent) == [
        (("mcp_servers", 1, "http", "headers", header), LITERAL_CREDENTIAL)
    ]


def test_credentials_from_a_secret_reference_and_plain_values_pass() -> None:
    agent = _agent()
    agent.mcp_servers[0].stdio.env.update(PORT="8080", GITHUB_TOKEN="${TOKEN}")
    agent.mcp_servers[1].http.headers.update({"Accept": "text/plain"})

    assert agent_problems(agent) == []


def _parameters(a: agent_pb2.Agent) -> None:
    params = Struct()
    params.update({"temperature": 0.1, "api_key": SECRET_VALUE})
    a.model.parameters.CopyFrom(params)


def _bad_schema(a: agent_pb2.Agent) -> None:
    schema = Struct()
    schema.update({"type": "object", "properties": {"age": {"type": "nonsense"}}})
    a.output_schema.CopyFrom(schema)


def _scripted_with_key(a: agent_pb2.Agent) -> None:
    a.model.CopyFrom(
        agent_pb2.ModelConfig(
            provider="scripted",
            api_key_secret="TOKEN",
            scripted=agent_pb2.ScriptedModel(default_reply="hi"),
        )
    )


def _infinite_schema(a: agent_pb2.Agent) -> None:
    a.output_schema.update({"maximum": float("inf")})


# Rules that only the CLI's manifest layer had before: the API enforces them now.
FORMERLY_CLI_ONLY: list[tuple[str, Callable[[agent_pb2.Agent], None]]] = [
    ("model.parameters[api_key]", _parameters),
    ("secrets[2]", lambda a: a.secrets.append("TOKEN")),
    ("mcp_servers[0].allowed_tools[1]", lambda a: a.mcp_servers[0].allowed_tools.extend("xx")),
    ("mcp_servers[0].stdio.command", lambda a: setattr(a.mcp_servers[0].stdio, "command", "{py}")),
    (
        "mcp_servers[0].stdio.command",
        lambda a: setattr(a.mcp_servers[0].stdio, "command", "{python} -m x"),
    ),
    ("mcp_servers[0].stdio.args[0]", lambda a: a.mcp_servers[0].stdio.args.append("--t=${TOKEN}")),
    (
        "mcp_servers[1].http.url",
        lambda a: setattr(a.mcp_servers[1].http, "url", "http://x/${TOKEN}"),
    ),
    (
        "mcp_servers[0].stdio.env[API_TOKEN]",
        lambda a: a.mcp_servers[0].stdio.env.update(API_TOKEN="${BAD-NAME}"),
    ),
    ("model.api_key_secret", _scripted_with_key),
    ("model.pricing.currency", lambda a: setattr(a.model.pricing, "currency", "usd")),
    ("model.retry.timeout", lambda a: setattr(a.model.retry.timeout, "seconds", 400 * 86_400)),
    ("limits.timeout", lambda a: setattr(a.limits.timeout, "seconds", 400 * 86_400)),
    ("output_schema[properties][age][type]", _bad_schema),
    ("output_schema", _infinite_schema),
]


@pytest.mark.parametrize(
    ("field", "mutate"),
    FORMERLY_CLI_ONLY,
    ids=[f"{i}-{c[0]}" for i, c in enumerate(FORMERLY_CLI_ONLY)],
)
def test_each_rule_names_its_field(field: str, mutate: Callable[[agent_pb2.Agent], None]) -> None:
    agent = _agent()
    mutate(agent)

    assert _paths(agent) == [field]


def test_a_scripted_rule_takes_exactly_one_of_reply_and_error() -> None:
    agent = _agent()
    agent.model.CopyFrom(
        agent_pb2.ModelConfig(
            provider="scripted",
            scripted=agent_pb2.ScriptedModel(
                rules=[agent_pb2.ScriptedRule(pattern="x", reply="r", error="e")]
            ),
        )
    )

    assert _paths(agent) == ["model.scripted.rules[0]"]


def test_every_problem_is_reported_not_just_the_first() -> None:
    agent = _agent()
    agent.name = "Bad Name"
    agent.mcp_servers[0].stdio.env["DB_PASSWORD"] = SECRET_VALUE
    agent.mcp_servers[1].http.headers["Authorization"] = SECRET_VALUE

    assert _paths(agent) == [
        "name",
        "mcp_servers[0].stdio.env[DB_PASSWORD]",
        "mcp_servers[1].http.headers[Authorization]",
    ]


def test_proto_paths_map_to_manifest_paths() -> None:
    assert manifest_loc(("name",)) == ("metadata", "name")
    assert manifest_loc(("mcp_servers", 0, "stdio", "env", Key("api_key"))) == (
        "spec",
        "mcpServers",
        0,
        "stdio",
        "env",
        "api_key",
    )
    assert manifest_loc(("model", "scripted", "rules", 1, "tool_call")) == (
        "spec",
        "model",
        "scripted",
        "rules",
        1,
        "toolCall",
    )
