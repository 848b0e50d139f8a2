"""`call: agent` (polyfleet extension): ask an agent through the host, use its answer.

``with: {agent: NAME, message: TEXT}``; `message` may be an expression, and a non-string
message is sent as JSON. The host runs the agent execution (linking it to the task id)
and returns its output, which becomes the task's raw output. Cancelling the task cancels
the host's call, which is where the child execution gets cancelled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from polyfleet.dsl.checks import Checker
from polyfleet.dsl.expressions import is_expression
from polyfleet.dsl.registry import CallFunction, StepResult
from polyfleet.dsl.runtime import Runtime, TaskCall


def check_agent(c: Checker, p: str, args: Mapping[str, Any], variables: frozenset[str]) -> None:
    """The `with` of `call: agent`; a literal agent name must be a known agent, if known."""
    c.keys(p, args, {"agent", "message"}, required=("agent", "message"))
    agent = args.get("agent")
    if "agent" in args and c.string(f"{p}/agent", agent, "'agent'"):
        assert isinstance(agent, str)
        if is_expression(agent):
            c.template(f"{p}/agent", agent, variables)
        elif c.known_agents is not None and agent not in c.known_agents:
            c.add(f"{p}/agent", f"unknown agent '{agent}'")
    if "message" in args:
        c.template(f"{p}/message", args["message"], variables)


async def call_agent(rt: Runtime, call: TaskCall) -> StepResult:
    """Delegate to ``hooks.call_agent`` and output what the agent answered."""
    args: Mapping[str, Any] = call.definition["with"]
    variables = rt.variables(call, call.input)
    agent = rt.template(args["agent"], call.input, variables)
    message = rt.template(args["message"], call.input, variables)
    if not isinstance(message, str):
        message = json.dumps(message)
    return StepResult(await rt.hooks.call_agent(str(agent), message, call.id))


AGENT = CallFunction("agent", check_agent, call_agent)
