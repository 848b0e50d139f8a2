"""One trace per execution: API call → Temporal workflow → activity → model/tool/task spans.

The orchestrator runs in this process (its tracer provider is installed once per test
session, exporting over OTLP like a deployed one); the runner is a real process configured
only by the standard OTEL_* variables. Both export to an OTLP receiver started here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from google.protobuf.struct_pb2 import Struct
from temporalio.client import Client

from polyfleet.telemetry import tracing
from polyfleet.telemetry.otlp_spans import FastOTLPSpanExporter
from polyfleet.v1 import agent_pb2, common_pb2
from tests.conftest import Fleet, scripted_agent, start_fleet, stopping
from tests.helpers import assert_eventually, wait_terminal
from tests.integration.workflows.conftest import apply_workflow
from tests.otlp import OtlpReceiver, TraceRequest
from tests.processes import runner_process

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED


@dataclass(frozen=True)
class Span:
    """One received span, flattened."""

    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    attributes: dict[str, Any]


def _flattened(request: TraceRequest) -> list[Span]:
    received = []
    for resource_spans in request.resource_spans:
        service = next(
            (
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            ),
            "",
        )
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                received.append(
                    Span(
                        service=service,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        name=span.name,
                        attributes={
                            a.key: a.value.string_value or a.value.int_value
                            for a in span.attributes
                        },
                    )
                )
    return received


@dataclass
class Collector:
    receiver: OtlpReceiver
    endpoint: str

    def trace(self, trace_id: str) -> list[Span]:
        """The spans of ``trace_id`` received so far."""
        return [
            span
            for request in self.receiver.trace_requests()
            for span in _flattened(request)
            if span.trace_id == trace_id
        ]


@pytest.fixture(scope="session")
def collector() -> Iterator[Collector]:
    """The test's OTLP receiver, and this process's (the orchestrator's) tracing into it.

    OpenTelemetry allows one tracer provider per process: it is installed once for the
    session and stays (later in-process fleets trace too, into this receiver).
    """
    receiver = OtlpReceiver()
    with receiver.serving() as endpoint:
        tracing.install(
            tracing.build_provider(
                tracing.ORCHESTRATOR_SERVICE,
                FastOTLPSpanExporter(endpoint=endpoint, insecure=True),
                schedule_delay_millis=100,
            )
        )
        try:
            yield Collector(receiver, endpoint)
        finally:
            tracing.flush()


@pytest_asyncio.fixture
async def traced_fleet(
    collector: Collector, temporal_client: Client, tmp_path: Path
) -> AsyncIterator[Fleet]:
    """An in-process orchestrator and a runner *process*, both exporting spans."""
    async with stopping(
        await start_fleet(temporal_client, tmp_path / "data", with_runner=False)
    ) as fleet:
        async with runner_process(
            fleet,
            tmp_path / "runner.log",
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
            OTEL_EXPORTER_OTLP_INSECURE="true",
            OTEL_BSP_SCHEDULE_DELAY="100",
        ):
            yield fleet


def tree(spans: list[Span]) -> str:
    """The trace as an indented tree: name, service, execution ID."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[Span]] = {}
    for span in spans:
        children.setdefault(span.parent_id if span.parent_id in ids else "", []).append(span)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for span in children.get(parent, []):
            execution = span.attributes.get(tracing.EXECUTION_ID, "")
            lines.append(f"{'  ' * depth}{span.name} [{span.service}] {execution}".rstrip())
            walk(span.span_id, depth + 1)

    walk("", 0)
    return "\n".join(lines)


def _parent(spans: list[Span], child: Span) -> Span:
    by_id = {s.span_id: s for s in spans}
    assert child.parent_id in by_id, f"{child.name}'s parent is not in the trace"
    return by_id[child.parent_id]


def _one(spans: list[Span], name: str, **attributes: Any) -> Span:
    found = [
        s
        for s in spans
        if s.name == name and all(s.attributes.get(k) == v for k, v in attributes.items())
    ]
    assert len(found) == 1, f"{name} {attributes} in\n{tree(spans)}"
    return found[0]


def _ancestors(spans: list[Span], span: Span) -> list[str]:
    by_id = {s.span_id: s for s in spans}
    names = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        names.append(span.name)
    return names


async def _trace(collector: Collector, trace_id: str, *names: str) -> list[Span]:
    async def received() -> list[Span]:
        return collector.trace(trace_id)

    def complete(spans: list[Span]) -> bool:
        have = {s.name for s in spans}
        return all(name in have for name in names)

    spans = await assert_eventually(
        received, complete, timeout=30, message=f"spans {names} of trace {trace_id}"
    )
    return spans


async def test_an_agent_execution_is_one_trace_from_the_client_to_its_tool_call(
    traced_fleet: Fleet, collector: Collector
) -> None:
    fleet = traced_fleet
    agent = scripted_agent(name="parent")
    arguments = Struct()
    arguments.update({"input": "help"})
    agent.model.scripted.rules.add(
        pattern="delegate",
        reply="Done: {tool_result}",
        tool_call=agent_pb2.ScriptedToolCall(name="helper", arguments=arguments),
    )
    agent.sub_agents.append(agent_pb2.SubAgent(name="helper", description="Helps."))
    await fleet.client.agents.apply(agent)
    # A traced application calling the Python client: the trace starts in its span.
    with tracing.tracer().start_as_current_span("application") as root:
        created = await fleet.client.agent_executions.create("parent", "delegate this")
    done = await wait_terminal(fleet.client.agent_executions, created.id)
    assert done.status.phase == COMPLETED, done.status.error

    trace_id = done.trace_id
    assert trace_id == created.trace_id == format(root.get_span_context().trace_id, "032x")
    spans = await _trace(
        collector,
        trace_id,
        "RunActivity:ExecuteGraphton",
        "polyfleet.tool_call",
        "polyfleet.sub_agent",
        "RunActivity:UpdateStatus",
    )
    execution = {tracing.EXECUTION_ID: created.id}
    api = _one(spans, "polyfleet.v1.AgentExecutionService/CreateAgentExecution", **execution)
    assert api.service == tracing.ORCHESTRATOR_SERVICE
    assert _parent(spans, api).name == "application"
    # temporalio's interceptor parents the workflow's spans (its run, its activities) on
    # the start's context it receives in the workflow's headers; the zero-length markers
    # of a scheduled activity and of a successful completion are not made.
    start = _one(spans, "StartWorkflow:AgentExecutionWorkflow")
    assert _parent(spans, start) == api
    run = _one(spans, "RunWorkflow:AgentExecutionWorkflow")
    assert _parent(spans, run) == start
    assert _parent(spans, _one(spans, "RunActivity:EnsureThread", **execution)) == start
    activity = _one(spans, "RunActivity:ExecuteGraphton", **execution)
    assert activity.service == tracing.RUNNER_SERVICE
    assert _parent(spans, activity) == start
    update = _one(spans, "RunActivity:UpdateStatus")
    assert _parent(spans, update) == start
    assert update.service == tracing.ORCHESTRATOR_SERVICE
    markers = [s.name for s in spans if s.name.startswith(("StartActivity:", "CompleteWorkflow:"))]
    assert markers == [], tree(spans)

    tool = _one(spans, "polyfleet.tool_call", **execution, **{"polyfleet.tool": "helper"})
    assert tool.service == tracing.RUNNER_SERVICE
    sub_agent = _one(spans, "polyfleet.sub_agent", **execution)
    assert _parent(spans, sub_agent) == tool
    model_calls = [s for s in spans if s.name == "polyfleet.model_call"]
    # The parent's two calls (before and after the tool) and the sub-agent's one.
    assert len(model_calls) == 3
    for call in model_calls:
        assert call.attributes[tracing.EXECUTION_ID] == created.id
        assert "RunActivity:ExecuteGraphton" in _ancestors(spans, call)
    assert sum(_parent(spans, call) == sub_agent for call in model_calls) == 1
    assert "RunActivity:ExecuteGraphton" in _ancestors(spans, tool)
    # RunnerService calls: the orchestrator's span is a child of the runner's.
    context = _one(spans, "polyfleet.v1.RunnerService/GetAgentExecutionContext", **execution)
    assert context.service == tracing.ORCHESTRATOR_SERVICE
    assert _parent(spans, context) == activity
    # The answer's report, which carries the turn for the thread too.
    reports = [s for s in spans if s.name == "polyfleet.v1.RunnerService/ReportProgress"]
    assert reports and all(_parent(spans, report) == activity for report in reports)
    assert not [s for s in spans if s.name.endswith("/AppendThreadMessages")]

    # The CLI-facing view shows it.
    fetched = await fleet.client.agent_executions.get(created.id)
    assert fetched.trace_id == trace_id


async def test_a_workflow_execution_is_one_trace_down_to_its_tasks(
    traced_fleet: Fleet, collector: Collector
) -> None:
    fleet = traced_fleet
    await apply_workflow(
        fleet,
        "traced",
        """
        do:
          - greet:
              set:
                greeting: hello
          - loop:
              for:
                each: n
                in: ${ [1, 2] }
              do:
                - add:
                    set:
                      n: ${ $n }
        """,
    )
    # Without a caller's trace, the API call's span is the root.
    created = await fleet.client.workflow_executions.create("traced")
    done = await wait_terminal(fleet.client.workflow_executions, created.id)
    assert done.status.phase == COMPLETED, done.status.error
    trace_id = done.trace_id
    assert len(trace_id) == 32 and int(trace_id, 16)

    spans = await _trace(collector, trace_id, "RunActivity:ExecuteWorkflow", "polyfleet.task")
    api = _one(spans, "polyfleet.v1.WorkflowExecutionService/CreateWorkflowExecution")
    assert api.parent_id == ""
    activity = _one(spans, "RunActivity:ExecuteWorkflow", **{tracing.EXECUTION_ID: created.id})
    assert _ancestors(spans, activity) == [
        "StartWorkflow:WorkflowExecutionWorkflow",
        api.name,
    ], tree(spans)
    tasks = {s.attributes["polyfleet.task.id"]: s for s in spans if s.name == "polyfleet.task"}
    greet = tasks["/do/0/greet"]
    assert greet.attributes[tracing.EXECUTION_ID] == created.id
    assert greet.attributes["polyfleet.task.phase"] == "COMPLETED"
    assert _parent(spans, greet) == activity
    loop = tasks["/do/1/loop"]
    inner = [s for key, s in tasks.items() if key.startswith("/do/1/loop/")]
    assert inner, sorted(tasks)
    for span in inner:
        assert _parent(spans, span) == loop
