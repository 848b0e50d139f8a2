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

from runner.dsl.flow import StepResult, executor
from runner.dsl.runtime import Runtime, TaskCall


@executor("call:agent")
async def call_agent(rt: Runtime, call: TaskCall) -> StepResult:
    """Delegate to ``hooks.call_agent`` and output what the agent answered."""
    args: Mapping[str, Any] = call.definition["with"]
    variables = rt.variables(call, call.input)
    agent = rt.template(args["agent"], call.input, variables)
    message = rt.template(args["message"], call.input, variables)
    if not isinstance(message, str):
        message = json.dumps(message)
    return StepResult(await rt.hooks.call_agent(str(agent), message, call.id))
