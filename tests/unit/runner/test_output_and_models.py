"""Structured output validation, model construction and pricing."""

from __future__ import annotations

import builtins
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from polyfleet.v1 import agent_pb2
from runner.errors import SecretError
from runner.graphton.callbacks import priced_usage
from runner.graphton.errors import ModelError, StructuredOutputError
from runner.graphton.models import build_model
from runner.graphton.output import structured_output
from runner.graphton.scripted import ScriptedChatModel
from runner.secrets import Secrets

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}},
    "required": ["answer"],
}


def _struct(value: dict[str, Any]) -> Struct:
    struct = Struct()
    struct.update(value)
    return struct


@pytest.mark.parametrize(
    "text",
    ['{"answer": 42}', '```json\n{"answer": 42}\n```', 'Here you go: {"answer": 42}. Bye'],
)
def test_structured_output_accepts_json_in_common_wrappings(text: str) -> None:
    assert MessageToDict(structured_output(text, _struct(SCHEMA))) == {"answer": 42}


def test_structured_output_rejects_non_json_and_schema_violations() -> None:
    with pytest.raises(StructuredOutputError, match="not JSON"):
        structured_output("forty-two", _struct(SCHEMA))
    with pytest.raises(StructuredOutputError, match=r"at answer: 'x' is not of type 'integer'"):
        structured_output('{"answer": "x"}', _struct(SCHEMA))
    with pytest.raises(StructuredOutputError, match="not a valid JSON Schema"):
        structured_output('{"answer": 1}', _struct({"type": "no-such-type"}))


def test_non_object_results_are_wrapped() -> None:
    output = structured_output("[1, 2]", _struct({"type": "array"}))
    assert MessageToDict(output) == {"value": [1, 2]}


def test_openai_model_gets_key_url_and_parameters() -> None:
    config = agent_pb2.ModelConfig(
        provider="openai",
        model="gpt-test",
        base_url="http://127.0.0.1:9/v1",
        api_key_secret="KEY",
        parameters=_struct({"temperature": 0.2, "max_tokens": 256}),
    )
    config.retry.timeout.FromSeconds(9)
    spec = build_model(config, Secrets(["KEY"], environ={"KEY": "sk-abc"}))
    model = spec.chat_model
    assert isinstance(model, ChatOpenAI)
    assert isinstance(model.openai_api_key, SecretStr)
    assert model.openai_api_key.get_secret_value() == "sk-abc"
    assert (model.model_name, model.openai_api_base) == ("gpt-test", "http://127.0.0.1:9/v1")
    assert (model.temperature, model.max_tokens, model.max_retries) == (0.2, 256, 0)
    assert isinstance(model.max_tokens, int)
    assert model.stream_usage is True
    assert spec.retry.call_timeout == 9.0
    assert spec.where == "openai model 'gpt-test' at http://127.0.0.1:9/v1"


def test_openai_model_without_a_secret_does_not_read_openai_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-runner-env")
    spec = build_model(agent_pb2.ModelConfig(provider="openai", model="m"), Secrets([]))
    assert isinstance(spec.chat_model, ChatOpenAI)
    key = spec.chat_model.openai_api_key
    assert isinstance(key, SecretStr)
    assert key.get_secret_value() != "sk-from-the-runner-env"


def test_scripted_unknown_and_missing_secret() -> None:
    scripted = build_model(
        agent_pb2.ModelConfig(provider="scripted", scripted=agent_pb2.ScriptedModel()),
        Secrets([]),
    )
    assert isinstance(scripted.chat_model, ScriptedChatModel)
    with pytest.raises(ModelError, match="'nope' is not available") as unknown:
        build_model(agent_pb2.ModelConfig(provider="nope"), Secrets([]))
    assert unknown.value.error_type == "ModelProviderError"
    with pytest.raises(SecretError):
        build_model(
            agent_pb2.ModelConfig(provider="openai", api_key_secret="KEY"), Secrets(["KEY"])
        )


def test_invalid_parameters_are_a_provider_error() -> None:
    config = agent_pb2.ModelConfig(
        provider="openai", model="m", parameters=_struct({"temperature": "hot"})
    )
    with pytest.raises(ModelError, match="invalid parameters"):
        build_model(config, Secrets([]))


def test_missing_optional_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_ollama(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("langchain_ollama"):
            raise ImportError("No module named 'langchain_ollama'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(__import__("sys").modules, "langchain_ollama", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_ollama)
    with pytest.raises(ModelError, match=r"pip install 'polyfleet\[ollama\]'"):
        build_model(agent_pb2.ModelConfig(provider="ollama", model="llama3"), Secrets([]))


def test_installed_anthropic_and_ollama_build() -> None:
    secrets = Secrets(["K"], environ={"K": "sk-ant-test"})
    anthropic = build_model(
        agent_pb2.ModelConfig(provider="anthropic", model="claude-x", api_key_secret="K"),
        secrets,
    )
    assert type(anthropic.chat_model).__name__ == "ChatAnthropic"
    ollama = build_model(
        agent_pb2.ModelConfig(provider="ollama", model="llama3", base_url="http://h:11434"),
        secrets,
    )
    assert type(ollama.chat_model).__name__ == "ChatOllama"


def test_priced_usage() -> None:
    pricing = agent_pb2.ModelPricing(input_per_million_tokens=2.0, output_per_million_tokens=8.0)
    usage = priced_usage(1_000, 500, pricing)
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (1000, 500, 1500)
    assert usage.cost == pytest.approx(0.006)
    assert (usage.currency, usage.model_calls) == ("USD", 1)
    free = priced_usage(10, 5, agent_pb2.ModelPricing())
    assert (free.cost, free.currency) == (0.0, "")


def test_executions_with_the_same_model_share_one_chat_model() -> None:
    config = agent_pb2.ModelConfig(provider="openai", model="m", api_key_secret="KEY")
    first = build_model(config, Secrets(["KEY"], environ={"KEY": "sk-one"})).chat_model
    again = build_model(config, Secrets(["KEY"], environ={"KEY": "sk-one"})).chat_model
    rotated = build_model(config, Secrets(["KEY"], environ={"KEY": "sk-two"})).chat_model
    other = agent_pb2.ModelConfig(provider="openai", model="other", api_key_secret="KEY")
    changed = build_model(other, Secrets(["KEY"], environ={"KEY": "sk-one"})).chat_model
    assert again is first
    assert rotated is not first
    assert isinstance(rotated, ChatOpenAI)
    assert isinstance(rotated.openai_api_key, SecretStr)
    assert rotated.openai_api_key.get_secret_value() == "sk-two"
    assert changed is not first
