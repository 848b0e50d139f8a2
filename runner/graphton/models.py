"""Model providers: an agent's ``ModelConfig`` becomes a LangChain chat model.

- ``scripted``: the offline, deterministic model (the embedded default for demos/tests).
- ``openai``: any OpenAI-compatible chat completions endpoint (OpenAI, vLLM, Ollama's
  OpenAI endpoint, LM Studio, LiteLLM) through ``langchain_openai.ChatOpenAI``.
- ``anthropic`` and ``ollama``: their LangChain integrations, optional extras imported
  only when an agent uses them.

The API key is passed explicitly from the agent's declared secret, never picked up
implicitly from ``OPENAI_API_KEY`` and the like, so an agent only gets the credentials
it names. SDK-level retries are off: :mod:`runner.graphton.retry` owns retrying.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel

# Imported eagerly (it is a core dependency): the import takes over a second, which
# belongs in the runner's start-up, not in its first execution.
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from polyfleet.structs import struct_to_dict
from polyfleet.v1 import agent_pb2
from runner.graphton.errors import ModelError
from runner.graphton.retry import RetryPolicy
from runner.graphton.scripted import ScriptedChatModel
from runner.secrets import Secrets

SCRIPTED = "scripted"
# OpenAI-compatible servers that need no key still expect the header.
_NO_KEY = "not-needed"
_EXTRAS = {"anthropic": "anthropic", "ollama": "ollama"}


@dataclass(frozen=True)
class ModelSpec:
    """A ready chat model and what running it needs.

    Attributes:
        chat_model: The LangChain chat model.
        where: The model in words, for error messages and logs.
        retry: How each call of it is attempted.
        pricing: Its prices, for the cost of each call.
        labels: Its provider and model name, the labels of its metrics.

    """

    chat_model: BaseChatModel
    where: str
    retry: RetryPolicy
    pricing: agent_pb2.ModelPricing
    labels: tuple[str, str] = ("", "")


def model_parameters(config: agent_pb2.ModelConfig) -> dict[str, Any]:
    """The provider parameters (temperature, max_tokens, …) as keyword arguments."""
    # Struct numbers are doubles; providers want max_tokens=256, not 256.0.
    return struct_to_dict(config.parameters)


def describe(config: agent_pb2.ModelConfig) -> str:
    """E.g. ``openai model 'gpt-4o-mini' at http://127.0.0.1:8000/v1``."""
    text = f"{config.provider or '(no provider)'} model '{config.model or 'default'}'"
    return f"{text} at {config.base_url}" if config.base_url else text


def _api_key(config: agent_pb2.ModelConfig, secrets: Secrets) -> SecretStr:
    if not config.api_key_secret:
        return SecretStr(_NO_KEY)
    return SecretStr(secrets.get(config.api_key_secret, purpose="model.api_key_secret"))


def _import_integration(provider: str, module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        raise ModelError(
            f"model provider '{provider}' needs the optional extra that is not installed "
            f"on this runner: pip install 'polyfleet[{_EXTRAS[provider]}]'"
        ) from None


def _sdk_kwargs(
    config: agent_pb2.ModelConfig, api_key: SecretStr, timeout: float
) -> dict[str, Any]:
    # OpenAI's and Anthropic's integrations take the same options; their SDK retries are
    # off because runner.graphton.retry owns retrying. A parameter repeating one of these
    # is a TypeError, reported as invalid parameters.
    return {
        "model": config.model,
        "base_url": config.base_url or None,
        "api_key": api_key,
        "stream_usage": True,
        "max_retries": 0,
        "timeout": timeout,
    }


def _openai(
    config: agent_pb2.ModelConfig, api_key: SecretStr, timeout: float, params: dict[str, Any]
) -> BaseChatModel:
    return ChatOpenAI(**_sdk_kwargs(config, api_key, timeout), **params)


def _anthropic(
    config: agent_pb2.ModelConfig, api_key: SecretStr, timeout: float, params: dict[str, Any]
) -> BaseChatModel:
    chat_anthropic = _import_integration("anthropic", "langchain_anthropic", "ChatAnthropic")
    model: BaseChatModel = chat_anthropic(**_sdk_kwargs(config, api_key, timeout), **params)
    return model


def _ollama(
    config: agent_pb2.ModelConfig, api_key: SecretStr, timeout: float, params: dict[str, Any]
) -> BaseChatModel:
    chat_ollama = _import_integration("ollama", "langchain_ollama", "ChatOllama")
    headers = {}
    if config.api_key_secret:  # e.g. Ollama behind an authenticating proxy
        headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
    model: BaseChatModel = chat_ollama(
        model=config.model,
        base_url=config.base_url or None,
        client_kwargs={"timeout": timeout, "headers": headers},
        **params,
    )
    return model


_FACTORIES: dict[
    str, Callable[[agent_pb2.ModelConfig, SecretStr, float, dict[str, Any]], BaseChatModel]
] = {"openai": _openai, "anthropic": _anthropic, "ollama": _ollama}


@functools.lru_cache(maxsize=64)
def _shared_model(config: bytes, api_key: str, timeout: float) -> BaseChatModel:
    # One chat model per distinct configuration and key, shared by the executions that
    # use it: building one with its HTTP clients costs milliseconds of CPU per execution,
    # and a shared one keeps its connections to the provider open between executions.
    model_config = agent_pb2.ModelConfig.FromString(config)
    factory = _FACTORIES[model_config.provider]
    return factory(model_config, SecretStr(api_key), timeout, model_parameters(model_config))


def build_model(
    config: agent_pb2.ModelConfig,
    secrets: Secrets,
    *,
    initial_backoff: float = 1.0,
    max_backoff: float = 30.0,
) -> ModelSpec:
    """Build the chat model of ``config``.

    Args:
        config: The agent's (or sub-agent's) model configuration.
        secrets: The agent's secrets, for the API key.
        initial_backoff: Seconds before the first retry of a transient failure.
        max_backoff: Longest wait between attempts.

    Raises:
        ModelError: Unknown provider, missing optional extra or invalid parameters.
        SecretError: The API key secret is undeclared or has no value.

    """
    retry = RetryPolicy.resolve(
        config.retry, initial_backoff=initial_backoff, max_backoff=max_backoff
    )
    where = describe(config)
    if config.provider == SCRIPTED:
        model: BaseChatModel = ScriptedChatModel(
            script=config.scripted, model_name=config.model or SCRIPTED
        )
        return ModelSpec(model, where, retry, config.pricing, _labels(config))
    factory = _FACTORIES.get(config.provider)
    if factory is None:
        known = ", ".join(sorted([SCRIPTED, *_FACTORIES]))
        raise ModelError(
            f"model provider '{config.provider}' is not available in this runner (known: {known})"
        )
    key = _api_key(config, secrets).get_secret_value()
    try:
        model = _shared_model(config.SerializeToString(deterministic=True), key, retry.call_timeout)
    except (ValueError, TypeError) as err:  # pydantic's ValidationError is a ValueError
        raise ModelError(f"invalid parameters for {where}: {secrets.scrub(str(err))}") from None
    return ModelSpec(model, where, retry, config.pricing, _labels(config))


def _labels(config: agent_pb2.ModelConfig) -> tuple[str, str]:
    """Provider and model: bounded by the agents' definitions (never the base URL)."""
    return config.provider, config.model or "default"
