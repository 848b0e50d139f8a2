"""Human-readable renderings of API resources (the ``-o text`` output)."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.duration_pb2 import Duration

from polyfleet.cli.output import (
    format_error,
    format_table,
    format_timestamp,
    format_tool_call,
    format_usage,
    has_usage,
    role_name,
    shorten,
    struct_json,
    value_json,
)
from polyfleet.cli.tasks import task_summary
from polyfleet.contract import phase_name
from polyfleet.manifest import parse_document_text
from polyfleet.telemetry.tracing import trace_url
from polyfleet.v1 import (
    agent_execution_pb2,
    agent_pb2,
    common_pb2,
    workflow_execution_pb2,
    workflow_pb2,
)


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
        ("Created by", format_actor(execution.created_by)),
        ("Started", format_timestamp(status.start_time)),
        ("Ended", format_timestamp(status.end_time)),
        ("Workflow", execution.workflow_id),
        ("Trace", format_trace(execution.trace_id)),
        ("Message", execution.message),
    ]
    if status.output_text:
        fields.append(("Output", status.output_text))
    if status.HasField("output"):
        fields.append(("Structured", struct_json(status.output)))
    if status.HasField("error"):
        fields.append(("Error", format_error(status.error)))
    if status.HasField("usage") and has_usage(status.usage):
        fields.append(("Usage", format_usage(status.usage)))
    lines = _aligned(fields)
    lines.extend(_transitions(status.transitions))
    if status.messages:
        lines.append("Messages:")
        lines.extend(f"  {role_name(m.role)}: {m.content}" for m in status.messages)
    if status.tool_calls:
        lines.append("Tool calls:")
        lines.extend(f"  {format_tool_call(call)}" for call in status.tool_calls)
    if status.sub_agent_executions:
        lines.append("Sub-agent runs:")
        lines.extend(f"  {_sub_agent_run(run)}" for run in status.sub_agent_executions)
    return "\n".join(lines)


def _sub_agent_run(run: common_pb2.SubAgentExecution) -> str:
    text = f"{run.name} [{phase_name(run.phase)}]"
    if run.input:
        text += f" {shorten(run.input, 60)}"
    if run.output:
        text += f" -> {shorten(run.output, 100)}"
    if run.HasField("error"):
        text += f" -> error: {format_error(run.error)}"
    return text


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
        ("Created by", format_actor(agent.created_by)),
        ("Updated", format_timestamp(agent.update_time)),
        ("Updated by", format_actor(agent.updated_by)),
    ]
    if model.base_url:
        fields.append(("Base URL", model.base_url))
    if model.api_key_secret:
        fields.append(("API key", f"secret {model.api_key_secret}"))
    if model.HasField("scripted"):
        fields.append(("Scripted rules", str(len(model.scripted.rules))))
    if agent.secrets:
        fields.append(("Secrets", ", ".join(agent.secrets)))
    if agent.graph:
        fields.append(("Graph", agent.graph))
    if agent.HasField("output_schema"):
        fields.append(("Output schema", shorten(struct_json(agent.output_schema), 100)))
    if agent.HasField("limits"):
        fields.append(("Limits", _limits(agent.limits)))
    lines = _aligned(fields)
    if agent.instructions:
        lines.append("Instructions:")
        lines.extend(f"  {line}" for line in agent.instructions.splitlines())
    if agent.mcp_servers:
        lines.append("MCP servers:")
        lines.extend(f"  {_mcp_server(server)}" for server in agent.mcp_servers)
    if agent.sub_agents:
        lines.append("Sub-agents:")
        lines.extend(f"  {sub.name}: {shorten(sub.description, 80)}" for sub in agent.sub_agents)
    return "\n".join(lines)


def workflow_table(workflows: Sequence[workflow_pb2.Workflow]) -> str:
    """Render workflows as a table with NAME, VERSION, DOCUMENT and DESCRIPTION.

    Args:
        workflows: The workflows, in display order.

    Returns:
        The table text; DOCUMENT is the DSL document's ``namespace/name@version``.

    """
    rows = [
        [w.name, str(w.version), _document_name(w.document), shorten(w.description, 60)]
        for w in workflows
    ]
    return format_table(["NAME", "VERSION", "DOCUMENT", "DESCRIPTION"], rows)


def describe_workflow(workflow: workflow_pb2.Workflow) -> str:
    """Render one workflow's definition, its document in full.

    Args:
        workflow: The workflow.

    Returns:
        Multi-line text.

    """
    fields = [
        ("Name", workflow.name),
        ("ID", workflow.id),
        ("Version", str(workflow.version)),
        ("Description", workflow.description),
        ("Document", _document_name(workflow.document)),
        ("Labels", ", ".join(f"{k}={v}" for k, v in sorted(workflow.labels.items()))),
        ("Created", format_timestamp(workflow.create_time)),
        ("Created by", format_actor(workflow.created_by)),
        ("Updated", format_timestamp(workflow.update_time)),
        ("Updated by", format_actor(workflow.updated_by)),
    ]
    lines = _aligned(fields)
    lines.append("Definition:")
    lines.extend(f"  {line}" for line in workflow.document.rstrip().splitlines())
    return "\n".join(lines)


def _document_name(text: str) -> str:
    # The DSL's own identity of the document: namespace/name@version.
    try:
        document = parse_document_text(text)
    except ValueError:
        return "-"
    header = document.get("document") if isinstance(document, dict) else None
    if not isinstance(header, dict):
        return "-"
    namespace, name, version = (header.get(k) for k in ("namespace", "name", "version"))
    return f"{namespace}/{name}@{version}"


def workflow_execution_table(
    executions: Sequence[workflow_execution_pb2.WorkflowExecution],
) -> str:
    """Render workflow executions as a table with ID, WORKFLOW, PHASE and CREATED columns.

    Args:
        executions: The executions, in display order.

    Returns:
        The table text.

    """
    rows = [
        [e.id, e.workflow, phase_name(e.status.phase), format_timestamp(e.create_time)]
        for e in executions
    ]
    return format_table(["ID", "WORKFLOW", "PHASE", "CREATED"], rows)


def describe_workflow_execution(execution: workflow_execution_pb2.WorkflowExecution) -> str:
    """Render one workflow execution with its status and every task's state.

    Args:
        execution: The execution.

    Returns:
        Multi-line text.

    """
    status = execution.status
    fields = [
        ("ID", execution.id),
        ("Workflow", execution.workflow),
        ("Phase", phase_name(status.phase)),
        ("Created", format_timestamp(execution.create_time)),
        ("Created by", format_actor(execution.created_by)),
        ("Started", format_timestamp(status.start_time)),
        ("Ended", format_timestamp(status.end_time)),
        ("Temporal ID", execution.workflow_id),
        ("Trace", format_trace(execution.trace_id)),
        ("Input", shorten(struct_json(execution.input)) if execution.HasField("input") else ""),
    ]
    if status.HasField("output"):
        fields.append(("Output", shorten(value_json(status.output))))
    if status.HasField("error"):
        fields.append(("Error", format_error(status.error)))
    lines = _aligned(fields)
    lines.extend(_transitions(status.transitions))
    if status.tasks:
        lines.append("Tasks:")
        lines.extend(f"  {task_summary(task)}" for task in status.tasks)
    if status.messages:
        lines.append("Messages:")
        lines.extend(f"  {role_name(m.role)}: {m.content}" for m in status.messages)
    return "\n".join(lines)


def format_actor(actor: common_pb2.Actor) -> str:
    """``subject (role)``; the role is how the caller was identified when it has none.

    An empty role means authentication was off (``none``) or the orchestrator itself did it
    (``system``); ``-`` when nobody was recorded (written before identities were).
    """
    if not actor.subject:
        return "-"
    return f"{actor.subject} ({actor.role or actor.via or '?'})"


def _transitions(transitions: Sequence[common_pb2.PhaseTransition]) -> list[str]:
    # One line per phase change: phases, time, who and through which path, why.
    if not transitions:
        return []
    lines = ["Transitions:"]
    for t in transitions:
        line = (
            f"  {phase_name(t.from_phase)} -> {phase_name(t.to_phase)}"
            f" at {format_timestamp(t.time)} by {format_actor(t.actor)}"
        )
        if t.source:
            line += f" via {t.source}"
        if t.reason:
            line += f": {shorten(t.reason, 100)}"
        lines.append(line)
    return lines


def _mcp_server(server: agent_pb2.McpServer) -> str:
    if server.WhichOneof("transport") == "http":
        where = f"http {server.http.url}"
    else:
        where = "stdio " + " ".join([server.stdio.command, *server.stdio.args])
    tools = f" (tools: {', '.join(server.allowed_tools)})" if server.allowed_tools else ""
    return f"{server.name}: {shorten(where, 100)}{tools}"


def _limits(limits: agent_pb2.AgentLimits) -> str:
    parts = []
    if limits.max_steps:
        parts.append(f"{limits.max_steps} steps")
    if limits.HasField("timeout"):
        parts.append(f"timeout {_seconds(limits.timeout)}")
    return ", ".join(parts)


def _seconds(duration: Duration) -> str:
    return f"{duration.ToTimedelta().total_seconds():g}s"


def format_trace(trace_id: str) -> str:
    """The trace ID, with its link when ``POLYFLEET_TRACE_URL_TEMPLATE`` is set."""
    url = trace_url(trace_id)
    return f"{trace_id} ({url})" if url else trace_id


def _aligned(fields: Sequence[tuple[str, str]]) -> list[str]:
    width = max(len(name) for name, _ in fields) + 1
    return [f"{name + ':':<{width}} {value or '-'}" for name, value in fields]
