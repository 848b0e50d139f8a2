"""Agent manifests with tools, sub-agents, secrets, providers, output schema and limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from google.protobuf.json_format import MessageToDict

from polyfleet.manifest import (
    ManifestError,
    agent_to_manifest,
    load_manifests,
    parse_manifests,
)
from polyfleet.v1 import agent_pb2

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

FULL = """\
apiVersion: polyfleet/v1
kind: Agent
metadata:
  name: full
spec:
  instructions: Use tools.
  secrets: [GITHUB_TOKEN, OPENAI_API_KEY]
  model:
    provider: scripted
    pricing: {inputPerMillionTokens: 1, outputPerMillionTokens: 2.5}
    scripted:
      rules:
        - pattern: weather
          toolCall:
            name: get_weather
            arguments: {city: Paris, days: 2}
          reply: "It is {tool_result}"
        - pattern: ping
          toolCall: {name: ping}
          reply: pong
  mcpServers:
    - name: local
      stdio:
        command: "{python}"
        args: ["-m", "tools.server", "--verbose"]
        env: {GITHUB_TOKEN: "${GITHUB_TOKEN}", MODE: demo}
        cwd: /srv/tools
      allowedTools: [get_weather, add]
    - name: remote
      http:
        url: https://mcp.example.com/mcp
        headers: {Authorization: "Bearer ${GITHUB_TOKEN}", X-Team: demo}
  subAgents:
    - name: summarizer
      description: Summarizes text.
      instructions: Be short.
      model:
        provider: openai
        model: gpt-4o-mini
        baseUrl: http://127.0.0.1:8000/v1
        apiKeySecret: OPENAI_API_KEY
        retry: {maxAttempts: 4, timeout: PT45S}
        pricing: {inputPerMillionTokens: 0.15, outputPerMillionTokens: 0.6, currency: EUR}
      mcpServers:
        - name: search
          http: {url: "http://127.0.0.1:9000/mcp"}
  outputSchema:
    type: object
    properties:
      answer: {type: string}
      items: {type: array, maxItems: 3}
    required: [answer]
  limits:
    maxSteps: 12
    timeout: 1m30s
  graph: my_team.graphs:support_agent
"""


def write(tmp_path: Path, text: str, name: str = "agent.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load_manifests(write(tmp_path, text))
    return info.value


def all_fields(error: ManifestError) -> list[str | None]:
    return [error.field, *(e.field for e in error.additional)]


def expected_full() -> agent_pb2.Agent:
    agent = agent_pb2.Agent(
        name="full",
        instructions="Use tools.",
        secrets=["GITHUB_TOKEN", "OPENAI_API_KEY"],
        model=agent_pb2.ModelConfig(
            provider="scripted",
            pricing=agent_pb2.ModelPricing(
                input_per_million_tokens=1, output_per_million_tokens=2.5
            ),
        ),
        mcp_servers=[
            agent_pb2.McpServer(
                name="local",
                stdio=agent_pb2.McpStdio(
                    command="{python}",
                    args=["-m", "tools.server", "--verbose"],
                    env={"GITHUB_TOKEN": "${GITHUB_TOKEN}", "MODE": "demo"},
                    cwd="/srv/tools",
                ),
                allowed_tools=["get_weather", "add"],
            ),
            agent_pb2.McpServer(
                name="remote",
                http=agent_pb2.McpHttp(
                    url="https://mcp.example.com/mcp",
                    headers={"Authorization": "Bearer ${GITHUB_TOKEN}", "X-Team": "demo"},
                ),
            ),
        ],
        sub_agents=[
            agent_pb2.SubAgent(
                name="summarizer",
                description="Summarizes text.",
                instructions="Be short.",
                model=agent_pb2.ModelConfig(
                    provider="openai",
                    model="gpt-4o-mini",
                    base_url="http://127.0.0.1:8000/v1",
                    api_key_secret="OPENAI_API_KEY",
                    retry=agent_pb2.ModelRetry(max_attempts=4),
                    pricing=agent_pb2.ModelPricing(
                        input_per_million_tokens=0.15,
                        output_per_million_tokens=0.6,
                        currency="EUR",
                    ),
                ),
                mcp_servers=[
                    agent_pb2.McpServer(
                        name="search", http=agent_pb2.McpHttp(url="http://127.0.0.1:9000/mcp")
                    )
                ],
            )
        ],
        limits=agent_pb2.AgentLimits(max_steps=12),
        graph="my_team.graphs:support_agent",
    )
    weather = agent.model.scripted.rules.add(pattern="weather", reply="It is {tool_result}")
    weather.tool_call.name = "get_weather"
    weather.tool_call.arguments.update({"city": "Paris", "days": 2})
    ping = agent.model.scripted.rules.add(pattern="ping", reply="pong")
    ping.tool_call.name = "ping"
    agent.sub_agents[0].model.retry.timeout.FromSeconds(45)
    agent.limits.timeout.FromSeconds(90)
    agent.output_schema.update(
        {
            "type": "object",
            "properties": {"answer": {"type": "string"}, "items": {"type": "array", "maxItems": 3}},
            "required": ["answer"],
        }
    )
    return agent


# --- valid manifests ------------------------------------------------------------------------


def test_every_new_field_maps_onto_the_agent_message(tmp_path: Path) -> None:
    (agent,) = load_manifests(write(tmp_path, FULL))

    assert agent == expected_full()
    # A tool call without arguments is still a tool call.
    assert agent.model.scripted.rules[1].HasField("tool_call")


def test_the_full_manifest_round_trips(tmp_path: Path) -> None:
    (agent,) = load_manifests(write(tmp_path, FULL))

    text = yaml.safe_dump(agent_to_manifest(agent), sort_keys=False)

    (again,) = parse_manifests(text)
    assert again == agent
    assert "maxItems: 3\n" in text
    assert "timeout: 90s\n" in text


def test_example_assistant_runs_the_weather_mcp_server() -> None:
    (agent,) = load_manifests(EXAMPLES / "agents" / "assistant.yaml")

    (server,) = agent.mcp_servers
    assert server.name == "weather"
    assert server.stdio.command == "{python}"
    (script,) = server.stdio.args
    assert script == str(EXAMPLES.absolute() / "mcp" / "weather_server.py")
    assert Path(script).is_file()
    weather = next(r for r in agent.model.scripted.rules if r.HasField("tool_call"))
    assert weather.tool_call.name == "get_weather"
    assert MessageToDict(weather.tool_call.arguments) == {"city": "Paris"}
    assert "{tool_result}" in weather.reply
    assert "get_weather" in server.allowed_tools


def test_example_openai_compatible_agent_loads() -> None:
    (agent,) = load_manifests(EXAMPLES / "agents" / "openai-compatible.yaml")

    model = agent.model
    assert (model.provider, model.api_key_secret) == ("openai", "OPENAI_API_KEY")
    assert model.base_url.startswith("http://127.0.0.1:")
    assert model.model
    assert list(agent.secrets) == ["OPENAI_API_KEY"]
    assert model.pricing.input_per_million_tokens > 0
    assert model.retry.max_attempts == 3
    assert [s.name for s in agent.sub_agents] == ["summarizer"]
    assert agent.output_schema.fields["type"].string_value == "object"
    assert agent.limits.timeout.seconds == 300


# --- relative paths -------------------------------------------------------------------------

RELATIVE = """\
apiVersion: polyfleet/v1
kind: Agent
metadata: {name: paths}
spec:
  model: {provider: scripted, scripted: {defaultReply: ok}}
  mcpServers:
    - name: local
      stdio:
        command: ./bin/server
        args: ["./server.py", "../shared/x.py", "-m", "plain", "/abs/y.py", "--flag=./z", "."]
        cwd: ../work
  subAgents:
    - name: helper
      description: Helps.
      mcpServers:
        - name: nested
          stdio: {command: python3, args: ["./nested.py"]}
"""


def test_relative_stdio_paths_resolve_against_the_manifest_directory(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    folder.mkdir()

    (agent,) = load_manifests(write(folder, RELATIVE))

    stdio = agent.mcp_servers[0].stdio
    assert stdio.command == str(folder / "bin" / "server")
    assert list(stdio.args) == [
        str(folder / "server.py"),
        str(tmp_path / "shared" / "x.py"),
        "-m",
        "plain",
        "/abs/y.py",
        "--flag=./z",
        str(folder),
    ]
    assert stdio.cwd == str(tmp_path / "work")
    nested = agent.sub_agents[0].mcp_servers[0].stdio
    assert (nested.command, list(nested.args)) == ("python3", [str(folder / "nested.py")])


def test_parsing_text_keeps_paths_unless_given_a_base(tmp_path: Path) -> None:
    (kept,) = parse_manifests(RELATIVE)
    (based,) = parse_manifests(RELATIVE, base_dir=tmp_path)

    assert kept.mcp_servers[0].stdio.args[0] == "./server.py"
    assert based.mcp_servers[0].stdio.args[0] == str(tmp_path / "server.py")


def test_relative_path_of_a_relative_manifest_is_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, RELATIVE)
    monkeypatch.chdir(tmp_path)

    (agent,) = load_manifests("agent.yaml")

    assert os.path.isabs(agent.mcp_servers[0].stdio.args[0])


# --- invalid manifests ----------------------------------------------------------------------

BASE = """\
apiVersion: polyfleet/v1
kind: Agent
metadata: {name: checked}
spec:
  secrets: [TOKEN]
  model:
    provider: openai
    model: gpt-4o-mini
    apiKeySecret: TOKEN
  mcpServers:
    - name: local
      stdio:
        command: "{python}"
        args: [server.py]
        env: {TOKEN: "${TOKEN}"}
    - name: remote
      http:
        url: http://127.0.0.1:9000/mcp
        headers: {Authorization: "Bearer ${TOKEN}"}
  subAgents:
    - name: helper
      description: Helps.
"""

INVALID = [
    # (id, text to replace, replacement, field, words in the message)
    (
        "both transports",
        '        env: {TOKEN: "${TOKEN}"}\n',
        '        env: {TOKEN: "${TOKEN}"}\n      http: {url: "http://x"}\n',
        "spec.mcpServers[0]",
        "exactly one of stdio and http",
    ),
    (
        "no transport",
        "      http:\n        url: http://127.0.0.1:9000/mcp\n"
        '        headers: {Authorization: "Bearer ${TOKEN}"}\n',
        "      allowedTools: [x]\n",
        "spec.mcpServers[1]",
        "exactly one of stdio and http",
    ),
    ("duplicate MCP server", "name: remote", "name: local", "spec.mcpServers[1].name", "duplicate"),
    (
        "duplicate sub-agent",
        "      description: Helps.\n",
        "      description: Helps.\n    - name: helper\n      description: Again.\n",
        "spec.subAgents[1].name",
        "duplicate sub-agent name 'helper'",
    ),
    (
        "undeclared env secret",
        'env: {TOKEN: "${TOKEN}"}',
        'env: {TOKEN: "${OTHER}"}',
        "spec.mcpServers[0].stdio.env.TOKEN",
        "${OTHER}, which is not declared in the agent's secrets",
    ),
    (
        "undeclared header secret",
        "Bearer ${TOKEN}",
        "Bearer ${NOPE}",
        "spec.mcpServers[1].http.headers.Authorization",
        "not declared",
    ),
    (
        "malformed reference",
        'env: {TOKEN: "${TOKEN}"}',
        'env: {TOKEN: "${TO-KEN}"}',
        "spec.mcpServers[0].stdio.env.TOKEN",
        "invalid secret reference",
    ),
    (
        "literal credential header",
        "Bearer ${TOKEN}",
        "Bearer sk-live-123",
        "spec.mcpServers[1].http.headers.Authorization",
        "literal credential",
    ),
    (
        "literal credential env",
        'env: {TOKEN: "${TOKEN}"}',
        "env: {OPENAI_API_KEY: sk-123}",
        "spec.mcpServers[0].stdio.env.OPENAI_API_KEY",
        "literal credential",
    ),
    (
        "api key in parameters",
        "    model: gpt-4o-mini\n",
        "    model: gpt-4o-mini\n    parameters: {api_key: sk-123}\n",
        "spec.model.parameters.api_key",
        "api_key_secret",
    ),
    (
        "secret reference in args",
        "args: [server.py]",
        'args: ["--token=${TOKEN}"]',
        "spec.mcpServers[0].stdio.args[0]",
        "resolved only in stdio.env and http.headers",
    ),
    (
        "secret reference in url",
        "url: http://127.0.0.1:9000/mcp",
        "url: 'http://127.0.0.1:9000/mcp?key=${TOKEN}'",
        "spec.mcpServers[1].http.url",
        "resolved only",
    ),
    (
        "unknown placeholder",
        'command: "{python}"',
        'command: "{pyhton}"',
        "spec.mcpServers[0].stdio.command",
        "unknown placeholder {pyhton}",
    ),
    (
        "placeholder with arguments",
        'command: "{python}"',
        'command: "{python} -m x"',
        "spec.mcpServers[0].stdio.command",
        "alone",
    ),
    ("empty command", 'command: "{python}"', 'command: ""', "spec.mcpServers[0].stdio.command", ""),
    (
        "non-string env value",
        'env: {TOKEN: "${TOKEN}"}',
        "env: {PORT: 8080}",
        "spec.mcpServers[0].stdio.env.PORT",
        "valid string",
    ),
    (
        "not an http url",
        "url: http://127.0.0.1:9000/mcp",
        "url: ftp://x",
        "spec.mcpServers[1].http.url",
        "http(s) URL",
    ),
    (
        "bad MCP server name",
        "name: local",
        "name: 'my server'",
        "spec.mcpServers[0].name",
        "invalid name",
    ),
    (
        "duplicate allowed tool",
        '        env: {TOKEN: "${TOKEN}"}\n',
        '        env: {TOKEN: "${TOKEN}"}\n      allowedTools: [a, a]\n',
        "spec.mcpServers[0].allowedTools[1]",
        "duplicate tool",
    ),
    (
        "undeclared api key secret",
        "apiKeySecret: TOKEN",
        "apiKeySecret: OPENAI_API_KEY",
        "spec.model.apiKeySecret",
        "'OPENAI_API_KEY' is not declared in the agent's secrets",
    ),
    (
        "invalid secret name",
        "secrets: [TOKEN]",
        "secrets: [TOKEN, my-key]",
        "spec.secrets[1]",
        "invalid name",
    ),
    (
        "duplicate secret",
        "secrets: [TOKEN]",
        "secrets: [TOKEN, TOKEN]",
        "spec.secrets[1]",
        "duplicate",
    ),
    (
        "openai without model",
        "    model: gpt-4o-mini\n",
        "",
        "spec.model.model",
        "required when provider is 'openai'",
    ),
    ("unknown provider", "provider: openai", "provider: gemini", "spec.model.provider", "gemini"),
    (
        "base url not http",
        "    model: gpt-4o-mini\n",
        "    model: gpt-4o-mini\n    baseUrl: localhost:8000\n",
        "spec.model.baseUrl",
        "http(s) URL",
    ),
    (
        "scripted with api key",
        "    provider: openai\n    model: gpt-4o-mini\n",
        "    provider: scripted\n    scripted: {defaultReply: hi}\n",
        "spec.model.apiKeySecret",
        "not used by the scripted provider",
    ),
    (
        "bad graph",
        "  secrets: [TOKEN]\n",
        "  secrets: [TOKEN]\n  graph: my_graph\n",
        "spec.graph",
        "package.module:attribute",
    ),
    (
        "invalid output schema",
        "  secrets: [TOKEN]\n",
        "  secrets: [TOKEN]\n  outputSchema:\n    type: object\n"
        "    properties:\n      age: {type: integr}\n",
        "spec.outputSchema.properties.age.type",
        "not a valid JSON Schema",
    ),
    (
        "output schema not a mapping",
        "  secrets: [TOKEN]\n",
        "  secrets: [TOKEN]\n  outputSchema: [a]\n",
        "spec.outputSchema",
        "valid dictionary",
    ),
    (
        "zero max steps",
        "  secrets: [TOKEN]\n",
        "  secrets: [TOKEN]\n  limits: {maxSteps: 0}\n",
        "spec.limits.maxSteps",
        "greater than or equal to 1",
    ),
    (
        "bad timeout",
        "  secrets: [TOKEN]\n",
        "  secrets: [TOKEN]\n  limits: {timeout: soon}\n",
        "spec.limits.timeout",
        "invalid duration 'soon'",
    ),
    (
        "zero timeout",
        "  secrets: [TOKEN]\n",
        "  secrets: [TOKEN]\n  limits: {timeout: 0s}\n",
        "spec.limits.timeout",
        "greater than 0",
    ),
    (
        "too many attempts",
        "apiKeySecret: TOKEN",
        "apiKeySecret: TOKEN\n    retry: {maxAttempts: 11}",
        "spec.model.retry.maxAttempts",
        "less than or equal to 10",
    ),
    (
        "negative price",
        "apiKeySecret: TOKEN",
        "apiKeySecret: TOKEN\n    pricing: {inputPerMillionTokens: -1}",
        "spec.model.pricing.inputPerMillionTokens",
        "greater than or equal to 0",
    ),
    (
        "lowercase currency",
        "apiKeySecret: TOKEN",
        "apiKeySecret: TOKEN\n    pricing: {currency: usd}",
        "spec.model.pricing.currency",
        "ISO 4217",
    ),
    (
        "sub-agent without description",
        "      description: Helps.\n",
        "",
        "spec.subAgents[0].description",
        "field required",
    ),
    (
        "sub-agent model secret",
        "      description: Helps.\n",
        "      description: Helps.\n      model: {provider: openai, model: m, apiKeySecret: X}\n",
        "spec.subAgents[0].model.apiKeySecret",
        "not declared",
    ),
    (
        "sub-agent MCP secret",
        "      description: Helps.\n",
        "      description: Helps.\n      mcpServers:\n        - name: s\n"
        "          stdio: {command: x, env: {A: '${B}'}}\n",
        "spec.subAgents[0].mcpServers[0].stdio.env.A",
        "${B}",
    ),
    (
        "bad sub-agent name",
        "    - name: helper\n",
        "    - name: 'help me'\n",
        "spec.subAgents[0].name",
        "invalid name",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_fields_are_named(
    tmp_path: Path, old: str, new: str, field: str, words: str
) -> None:
    assert old in BASE
    error = error_for(tmp_path, BASE.replace(old, new, 1))

    assert field in all_fields(error), str(error)
    assert words in str(error)
    assert f"{tmp_path / 'agent.yaml'}: " in str(error)


def test_the_base_of_the_invalid_cases_is_valid(tmp_path: Path) -> None:
    (agent,) = load_manifests(write(tmp_path, BASE))

    assert agent.name == "checked"


def test_errors_carry_the_line_of_the_field(tmp_path: Path) -> None:
    error = error_for(tmp_path, BASE.replace("Bearer ${TOKEN}", "Bearer ${NOPE}"))

    assert error.line == 19
    assert str(error).endswith("(line 19)")


def test_output_schema_errors_point_into_the_schema(tmp_path: Path) -> None:
    text = BASE + "  outputSchema:\n    type: object\n    required: [1]\n"

    error = error_for(tmp_path, text)

    assert error.field == "spec.outputSchema.required[0]"
    assert error.line == 25


def test_rule_problems_are_all_reported(tmp_path: Path) -> None:
    text = BASE.replace("apiKeySecret: TOKEN", "apiKeySecret: NOPE").replace(
        "name: remote", "name: local"
    )

    error = error_for(tmp_path, text)

    assert all_fields(error) == ["spec.model.apiKeySecret", "spec.mcpServers[1].name"]


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (
            "reply: pong",
            "error: boom",
            "spec.model.scripted.rules[1].toolCall",
        ),
        (
            "name: get_weather",
            "name: get weather",
            "spec.model.scripted.rules[0].toolCall.name",
        ),
        ("arguments: {city: Paris, days: 2}", "arguments: [Paris]", None),
    ],
)
def test_invalid_scripted_tool_calls(tmp_path: Path, old: str, new: str, field: str | None) -> None:
    error = error_for(tmp_path, FULL.replace(old, new))

    fields = all_fields(error)
    if field is None:
        assert any(
            f and f.startswith("spec.model.scripted.rules[0].toolCall.arguments") for f in fields
        )
    else:
        assert field in fields, str(error)


def test_model_is_required_for_every_real_provider(tmp_path: Path) -> None:
    for provider in ("anthropic", "ollama"):
        text = BASE.replace("provider: openai", f"provider: {provider}").replace(
            "    model: gpt-4o-mini\n", ""
        )
        assert error_for(tmp_path, text).field == "spec.model.model"
