"""Validation of API requests, naming the offending field."""

from __future__ import annotations

import re

from orchestrator.errors import InvalidArgumentError
from polyfleet.v1 import agent_execution_pb2, agent_pb2

AGENT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
SUPPORTED_PROVIDERS = ("scripted",)
MAX_MESSAGE_CHARS = 100_000


def validate_agent(agent: agent_pb2.Agent, field: str = "agent") -> None:
    """Check an agent definition before it is stored.

    Args:
        agent: The definition.
        field: Field path of the agent in the request, for error messages.

    Raises:
        InvalidArgumentError: Naming the first invalid field.

    """
    if not agent.name:
        raise InvalidArgumentError(f"{field}.name", "must not be empty")
    if not AGENT_NAME.match(agent.name):
        raise InvalidArgumentError(
            f"{field}.name",
            f"'{agent.name}' must be 1-63 lowercase letters, digits or '-', starting with a letter",
        )
    provider = agent.model.provider
    if not provider:
        raise InvalidArgumentError(f"{field}.model.provider", "must not be empty")
    if provider not in SUPPORTED_PROVIDERS:
        raise InvalidArgumentError(
            f"{field}.model.provider",
            f"unknown provider '{provider}' (supported: {', '.join(SUPPORTED_PROVIDERS)})",
        )
    if provider == "scripted":
        _validate_scripted(agent.model, f"{field}.model")


def _validate_scripted(model: agent_pb2.ModelConfig, field: str) -> None:
    scripted = model.scripted
    if not model.HasField("scripted") or not (scripted.rules or scripted.default_reply):
        raise InvalidArgumentError(
            f"{field}.scripted", "the scripted provider needs rules or a default_reply"
        )
    if scripted.chunk_delay_ms < 0 or scripted.chunk_delay_ms > 10_000:
        raise InvalidArgumentError(f"{field}.scripted.chunk_delay_ms", "must be in 0..10000")
    if scripted.chunk_words < 0:
        raise InvalidArgumentError(f"{field}.scripted.chunk_words", "must not be negative")
    for i, rule in enumerate(scripted.rules):
        where = f"{field}.scripted.rules[{i}]"
        if not rule.pattern:
            raise InvalidArgumentError(f"{where}.pattern", "must not be empty")
        try:
            re.compile(rule.pattern)
        except re.error as err:
            raise InvalidArgumentError(
                f"{where}.pattern", f"invalid regular expression: {err}"
            ) from None
        if not rule.reply and not rule.error:
            raise InvalidArgumentError(where, "needs a reply or an error")


def validate_create_agent_execution(
    request: agent_execution_pb2.CreateAgentExecutionRequest,
) -> None:
    """Check a Create request for an agent execution.

    Raises:
        InvalidArgumentError: Naming the first invalid field.

    """
    execution = request.execution
    if not execution.agent:
        raise InvalidArgumentError("execution.agent", "must not be empty")
    if not execution.message.strip():
        raise InvalidArgumentError("execution.message", "must not be empty")
    if len(execution.message) > MAX_MESSAGE_CHARS:
        raise InvalidArgumentError(
            "execution.message",
            f"is {len(execution.message)} characters; the limit is {MAX_MESSAGE_CHARS}",
        )
