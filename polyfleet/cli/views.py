"""Human-readable renderings of API resources (the ``-o text`` output)."""

from __future__ import annotations

from collections.abc import Sequence

from polyfleet.cli.output import (
    format_error,
    format_table,
    format_timestamp,
    format_tool_call,
    phase_name,
    role_name,
    shorten,
)
from polyfleet.v1 import agent_execution_pb2, agent_pb2


def execution_table(executions: Sequence[agent_execution_pb2.AgentExecution]) -> str:
    """Render executions as a table with ID, AGENT, PHASE and CREATED columns.

    Args:
        executions: The executions, in display order.

    Returns:
        The table text.

    """
    rows = [
        [e.id, e.agent, phase_name(e.status.phase), format_timestamp(e.create_time)]
        for e in executions
    ]
    return format_table(["ID", "AGENT", "PHASE", "CREATED"], rows)


def agent_table(agents: Sequence[agent_pb2.Agent]) -> str:
    """Render agents as a table with NAME, VERSION, PROVIDER, MODEL and DESCRIPTION.

    Args:
        agents: The agents, in display order.

    Returns:
        The table text.

    """
    rows = [
        [a.name, str(a.version), a.model.provider, a.model.model, shorten(a.description, 60)]
        for a in agents
    ]
    return format_table(["NAME", "VERSION", "PROVIDER", "MODEL", "DESCRIPTION"], rows)


def describe_execution(execution: agent_execution_pb2.AgentExecution) -> str:
    """Render one execution with its status and transcript.

    Args:
        execution: The execution.

    Returns:
        Multi-line text.

    """
    status = execution.status
    fields = [
        ("ID", execution.id),
        ("Agent", execution.agent),
        ("Session", execution.session_id),
        ("Phase", phase_name(status.phase)),
        ("Created", format_timestamp(execution.create_time)),
        ("Started", format_timestamp(status.start_time)),
        ("Ended", format_timestamp(status.end_time)),
        ("Workflow", execution.workflow_id),
        ("Message", execution.message),
    ]
    if status.output_text:
        fields.append(("Output", status.output_text))
    if status.HasField("error"):
        fields.append(("Error", format_error(status.error)))
    if status.HasField("usage"):
        usage = status.usage
        fields.append(
            (
                "Tokens",
                f"{usage.input_tokens} in, {usage.output_tokens} out, {usage.total_tokens} total",
            )
        )
    lines = _aligned(fields)
    if status.messages:
        lines.append("Messages:")
        lines.extend(f"  {role_name(m.role)}: {m.content}" for m in status.messages)
    if status.tool_calls:
        lines.append("Tool calls:")
        lines.extend(f"  {format_tool_call(call)}" for call in status.tool_calls)
    return "\n".join(lines)


def describe_agent(agent: agent_pb2.Agent) -> str:
    """Render one agent's definition.

    Args:
        agent: The agent.

    Returns:
        Multi-line text.

    """
    model = agent.model
    fields = [
        ("Name", agent.name),
        ("ID", agent.id),
        ("Version", str(agent.version)),
        ("Description", agent.description),
        ("Provider", model.provider),
        ("Model", model.model),
        ("Labels", ", ".join(f"{k}={v}" for k, v in sorted(agent.labels.items()))),
        ("Created", format_timestamp(agent.create_time)),
        ("Updated", format_timestamp(agent.update_time)),
    ]
    if model.HasField("scripted"):
        fields.append(("Scripted rules", str(len(model.scripted.rules))))
    lines = _aligned(fields)
    if agent.instructions:
        lines.append("Instructions:")
        lines.extend(f"  {line}" for line in agent.instructions.splitlines())
    return "\n".join(lines)


def _aligned(fields: Sequence[tuple[str, str]]) -> list[str]:
    width = max(len(name) for name, _ in fields) + 1
    return [f"{name + ':':<{width}} {value or '-'}" for name, value in fields]
