"""An in-memory stand-in for the orchestrator's public API, for CLI and fleet tests.

It implements AgentService and AgentExecutionService with a tiny version of the scripted
model (first matching rule answers, streamed as word chunks), WorkflowService and
WorkflowExecutionService (fake_workflow_api.py; their state is ``FakeState.workflows``),
and gRPC health. It is a
module for the tests and, run as a script, a fake ``python -m orchestrator`` child for
the Fleet: it serves on ``POLYFLEET_API_ADDRESS`` until SIGTERM.

Message keywords steer the fake: ``flaky`` makes the first watch break with UNAVAILABLE
after three events; ``slow`` makes each streamed chunk take 0.1 s; ``hang`` leaves the
execution RUNNING until it is cancelled (and makes ExecuteAgent time out, as does
``deadline``; with ``graceful`` a cancel takes effect at the next Get, with ``stubborn``
never); ``delegate`` runs the agent's first sub-agent. A scripted rule with a
``tool_call`` reports the call (RUNNING, then SUCCEEDED with :func:`fake_tool_result`)
before the reply, whose ``{tool_result}`` is replaced. An agent with an ``output_schema``
gets ``{"answer": <reply>, "words": <count>}`` as its structured output.
"""

# The servicer methods implement the generated gRPC interface, so they keep its names.
# ruff: noqa: N802

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import (  # type: ignore[import-untyped, unused-ignore]
    health,
    health_pb2,
    health_pb2_grpc,
)

from orchestrator.errors import ExecutionDeadlineError
from orchestrator.servicers.errors import error_status
from polyfleet.tokens import hash_token, parse_token_file
from polyfleet.v1 import (
    agent_execution_pb2,
    agent_execution_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    common_pb2,
)
from tests.unit.cli.fake_workflow_api import WorkflowState, add_to_server
from tests.unit.cli.support import one_per_page

Context = grpc.ServicerContext
FLAKY_BREAK_AFTER = 3


@dataclass
class Recorded:
    """Requests the fake received, for assertions."""

    applied: list[agent_pb2.Agent] = field(default_factory=list)
    created: list[agent_execution_pb2.CreateAgentExecutionRequest] = field(default_factory=list)
    watches: list[agent_execution_pb2.WatchAgentExecutionRequest] = field(default_factory=list)
    lists: list[agent_execution_pb2.ListAgentExecutionsRequest] = field(default_factory=list)
    executes: list[agent_execution_pb2.ExecuteAgentRequest] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)


@dataclass
class _Run:
    execution: agent_execution_pb2.AgentExecution
    events: list[common_pb2.ExecutionEvent]
    flaky: bool = False
    slow: bool = False
    # "now", "later" (at the next Get) or "never": how a cancel of a RUNNING run lands.
    cancel_mode: str = "now"
    cancel_requested: bool = False


class FakeState:
    """Agents, workflows and executions shared by the fake services."""

    def __init__(self) -> None:
        """Start empty."""
        self.lock = threading.Lock()
        self.agents: dict[str, agent_pb2.Agent] = {}
        self.runs: dict[str, _Run] = {}
        self.recorded = Recorded()
        self.workflows = WorkflowState(lambda: list(self.agents))


class FakeAgentService(agent_pb2_grpc.AgentServiceServicer):
    """AgentService over :class:`FakeState`."""

    def __init__(self, state: FakeState) -> None:
        """Serve the given state."""
        self.state = state

    def ApplyAgent(self, request: agent_pb2.ApplyAgentRequest, context: Context) -> agent_pb2.Agent:
        """Store the agent, bumping its version."""
        with self.state.lock:
            self.state.recorded.applied.append(request.agent)
            previous = self.state.agents.get(request.agent.name)
            agent = agent_pb2.Agent()
            agent.CopyFrom(request.agent)
            agent.id = f"agt-{request.agent.name}"
            agent.version = previous.version + 1 if previous else 1
            self.state.agents[agent.name] = agent
            return agent

    def GetAgent(self, request: agent_pb2.GetAgentRequest, context: Context) -> agent_pb2.Agent:
        """Return the agent or NOT_FOUND."""
        with self.state.lock:
            agent = self.state.agents.get(request.name)
        if agent is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f'agent "{request.name}" not found')
        return agent

    def ListAgents(
        self, request: agent_pb2.ListAgentsRequest, context: Context
    ) -> agent_pb2.ListAgentsResponse:
        """Return one agent per page, to exercise page tokens."""
        with self.state.lock:
            agents = sorted(self.state.agents.values(), key=lambda a: a.name)
        page, token = one_per_page(agents, request.page_token)
        return agent_pb2.ListAgentsResponse(agents=page, next_page_token=token)

    def CreateAgent(
        self, request: agent_pb2.CreateAgentRequest, context: Context
    ) -> agent_pb2.Agent:
        """Not needed by the CLI."""
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "fake")

    def UpdateAgent(
        self, request: agent_pb2.UpdateAgentRequest, context: Context
    ) -> agent_pb2.Agent:
        """Not needed by the CLI."""
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "fake")

    def DeleteAgent(
        self, request: agent_pb2.DeleteAgentRequest, context: Context
    ) -> empty_pb2.Empty:
        """Not needed by the CLI."""
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "fake")


class FakeExecutionService(agent_execution_pb2_grpc.AgentExecutionServiceServicer):
    """AgentExecutionService whose executions finish instantly, as a scripted event log."""

    def __init__(self, state: FakeState) -> None:
        """Serve the given state."""
        self.state = state

    def CreateAgentExecution(
        self, request: agent_execution_pb2.CreateAgentExecutionRequest, context: Context
    ) -> agent_execution_pb2.AgentExecution:
        """Record an execution and its whole scripted event log."""
        with self.state.lock:
            self.state.recorded.created.append(request)
        run = self._create(request, context)
        pending = agent_execution_pb2.AgentExecution()
        pending.CopyFrom(run.execution)
        pending.status.Clear()
        pending.status.phase = common_pb2.EXECUTION_PHASE_PENDING
        return pending

    def GetAgentExecution(
        self, request: agent_execution_pb2.GetAgentExecutionRequest, context: Context
    ) -> agent_execution_pb2.AgentExecution:
        """Return the execution in its final state."""
        run = self._run(request.id, context)
        with self.state.lock:
            if run.cancel_requested and run.cancel_mode == "later":
                _cancel(run)
            return run.execution

    def ListAgentExecutions(
        self, request: agent_execution_pb2.ListAgentExecutionsRequest, context: Context
    ) -> agent_execution_pb2.ListAgentExecutionsResponse:
        """Filter by agent and phase; a page size of 1 yields a next page token."""
        with self.state.lock:
            self.state.recorded.lists.append(request)
            executions = [r.execution for r in self.state.runs.values()]
        executions = [
            e
            for e in executions
            if (not request.agent or e.agent == request.agent)
            and (not request.phase or e.status.phase == request.phase)
        ]
        token = ""
        if request.page_size and len(executions) > request.page_size:
            executions, token = executions[: request.page_size], "next-page"
        return agent_execution_pb2.ListAgentExecutionsResponse(
            executions=executions, next_page_token=token
        )

    def CancelAgentExecution(
        self, request: agent_execution_pb2.CancelAgentExecutionRequest, context: Context
    ) -> agent_execution_pb2.AgentExecution:
        """Cancel a hanging execution; a finished one is returned unchanged."""
        run = self._run(request.id, context)
        with self.state.lock:
            self.state.recorded.cancels.append(request.id)
            run.cancel_requested = True
            if run.cancel_mode == "now":
                _cancel(run)
            return run.execution

    def ExecuteAgent(
        self, request: agent_execution_pb2.ExecuteAgentRequest, context: Context
    ) -> agent_execution_pb2.AgentExecution:
        """Create, then answer with the final execution or, as the API does, with
        DEADLINE_EXCEEDED naming the execution."""
        with self.state.lock:
            self.state.recorded.executes.append(request)
        run = self._create(request.request, context)
        message = request.request.execution.message
        if "deadline" in message or "hang" in message:
            waited = request.timeout.ToTimedelta().total_seconds() or 60
            # The real API's status: the message, and the ID in ErrorInfo.
            context.abort_with_status(
                error_status(ExecutionDeadlineError(run.execution.id, waited))
            )
        return run.execution

    def WatchAgentExecution(
        self, request: agent_execution_pb2.WatchAgentExecutionRequest, context: Context
    ) -> Iterator[agent_execution_pb2.WatchAgentExecutionResponse]:
        """Stream a snapshot, then the scripted events after ``after_sequence``."""
        run = self._run(request.id, context)
        with self.state.lock:
            self.state.recorded.watches.append(request)
            first_watch = len(self.state.recorded.watches) == 1
        snapshot = agent_execution_pb2.AgentExecution()
        snapshot.CopyFrom(run.execution)
        yield agent_execution_pb2.WatchAgentExecutionResponse(snapshot=snapshot)
        sent = 0
        for event in run.events:
            if event.sequence <= request.after_sequence:
                continue
            if run.flaky and first_watch and sent == FLAKY_BREAK_AFTER:
                context.abort(grpc.StatusCode.UNAVAILABLE, "fake connection reset")
            if run.slow and event.update.content_delta:
                time.sleep(0.1)
            yield agent_execution_pb2.WatchAgentExecutionResponse(event=event)
            sent += 1

    def _create(
        self, request: agent_execution_pb2.CreateAgentExecutionRequest, context: Context
    ) -> _Run:
        with self.state.lock:
            agent = self.state.agents.get(request.execution.agent)
            if agent is None:
                context.abort(
                    grpc.StatusCode.NOT_FOUND, f'agent "{request.execution.agent}" not found'
                )
            execution_id = f"aex-{len(self.state.runs) + 1}"
            run = _script(execution_id, agent, request.execution)
            self.state.runs[execution_id] = run
        return run

    def _run(self, execution_id: str, context: Context) -> _Run:
        with self.state.lock:
            run = self.state.runs.get(execution_id)
        if run is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f'execution "{execution_id}" not found')
        return run


def _cancel(run: _Run) -> None:
    if run.execution.status.phase != common_pb2.EXECUTION_PHASE_RUNNING:
        return
    run.execution.status.phase = common_pb2.EXECUTION_PHASE_CANCELLED
    run.events.append(
        common_pb2.ExecutionEvent(
            execution_id=run.execution.id,
            sequence=len(run.events) + 1,
            update=common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_CANCELLED),
            phase=common_pb2.EXECUTION_PHASE_CANCELLED,
        )
    )


def fake_tool_result(name: str, arguments: dict[str, object]) -> str:
    """The result the fake reports for a scripted tool call."""
    return f"fake {name} result for {json.dumps(arguments, sort_keys=True)}"


def _script(
    execution_id: str, agent: agent_pb2.Agent, request: agent_execution_pb2.AgentExecution
) -> _Run:
    scripted = agent.model.scripted
    message_text = request.message
    rule = next((r for r in scripted.rules if re.search(r.pattern, message_text)), None)
    updates = [
        common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_PENDING),
        common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_RUNNING),
    ]
    status = agent_execution_pb2.AgentExecutionStatus()
    if "hang" in message_text:
        status.phase = common_pb2.EXECUTION_PHASE_RUNNING
    elif rule is not None and rule.error:
        error = common_pb2.ExecutionError(
            type="ModelProviderError", message=rule.error, step="ExecuteGraphton"
        )
        updates.append(common_pb2.ExecutionUpdate(error=error))
        updates.append(common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_FAILED))
        status.phase = common_pb2.EXECUTION_PHASE_FAILED
        status.error.CopyFrom(error)
    else:
        reply = rule.reply if rule is not None else scripted.default_reply
        reply = reply.replace("{message}", message_text)
        if rule is not None and rule.HasField("tool_call"):
            call = _tool_call_updates(rule.tool_call, updates, status)
            reply = reply.replace("{tool_result}", call.result)
        if "delegate" in message_text and agent.sub_agents:
            _sub_agent_updates(agent.sub_agents[0], message_text, updates, status)
        words = reply.split(" ")
        size = scripted.chunk_words or 3
        for start in range(0, len(words), size):
            chunk = " ".join(words[start : start + size])
            delta = chunk if start == 0 else " " + chunk
            updates.append(common_pb2.ExecutionUpdate(content_delta=delta, delta_message_id="m-1"))
        message = common_pb2.Message(
            id="m-1", role=common_pb2.MESSAGE_ROLE_ASSISTANT, content=reply, name=agent.name
        )
        updates.append(common_pb2.ExecutionUpdate(messages=[message]))
        usage = _usage(agent, message_text, reply, model_calls=1 + len(status.tool_calls))
        updates.append(
            common_pb2.ExecutionUpdate(
                phase=common_pb2.EXECUTION_PHASE_COMPLETED, output_text=reply, usage=usage
            )
        )
        status.phase = common_pb2.EXECUTION_PHASE_COMPLETED
        status.messages.append(message)
        status.output_text = reply
        status.usage.CopyFrom(usage)
        if agent.HasField("output_schema"):
            # A structured result, as an agent with an outputSchema produces.
            status.output.update({"answer": reply, "words": len(reply.split())})
    status.last_sequence = len(updates)
    events = []
    phase = common_pb2.EXECUTION_PHASE_UNSPECIFIED
    for sequence, update in enumerate(updates, start=1):
        phase = update.phase or phase
        events.append(
            common_pb2.ExecutionEvent(
                execution_id=execution_id, sequence=sequence, update=update, phase=phase
            )
        )
    execution = agent_execution_pb2.AgentExecution(
        id=execution_id,
        agent=request.agent,
        message=request.message,
        session_id=request.session_id or "ses-1",
        status=status,
    )
    execution.create_time.FromSeconds(1_700_000_000)
    cancel_mode = "later" if "graceful" in message_text else "now"
    return _Run(
        execution,
        events,
        flaky="flaky" in message_text,
        slow="slow" in message_text,
        cancel_mode="never" if "stubborn" in message_text else cancel_mode,
    )


def _tool_call_updates(
    scripted: agent_pb2.ScriptedToolCall,
    updates: list[common_pb2.ExecutionUpdate],
    status: agent_execution_pb2.AgentExecutionStatus,
) -> common_pb2.ToolCall:
    call = common_pb2.ToolCall(
        id="call-1", name=scripted.name, status=common_pb2.TOOL_CALL_STATUS_RUNNING
    )
    call.arguments.CopyFrom(scripted.arguments)
    updates.append(common_pb2.ExecutionUpdate(tool_calls=[call]))
    done = common_pb2.ToolCall()
    done.CopyFrom(call)
    done.status = common_pb2.TOOL_CALL_STATUS_SUCCEEDED
    arguments = MessageToDict(scripted.arguments) if scripted.HasField("arguments") else {}
    done.result = fake_tool_result(scripted.name, arguments)
    updates.append(common_pb2.ExecutionUpdate(tool_calls=[done]))
    status.tool_calls.append(done)
    return done


def _sub_agent_updates(
    sub: agent_pb2.SubAgent,
    task: str,
    updates: list[common_pb2.ExecutionUpdate],
    status: agent_execution_pb2.AgentExecutionStatus,
) -> None:
    run = common_pb2.SubAgentExecution(
        id="sub-1", name=sub.name, input=task, phase=common_pb2.EXECUTION_PHASE_RUNNING
    )
    updates.append(common_pb2.ExecutionUpdate(sub_agent_executions=[run]))
    done = common_pb2.SubAgentExecution()
    done.CopyFrom(run)
    done.phase = common_pb2.EXECUTION_PHASE_COMPLETED
    done.output = f"{sub.name} did: {task}"
    updates.append(common_pb2.ExecutionUpdate(sub_agent_executions=[done]))
    status.sub_agent_executions.append(done)


def _usage(agent: agent_pb2.Agent, message: str, reply: str, model_calls: int) -> common_pb2.Usage:
    # One token per word: enough to show the totals and the cost arithmetic.
    usage = common_pb2.Usage(
        input_tokens=len(message.split()),
        output_tokens=len(reply.split()),
        model_calls=model_calls,
    )
    usage.total_tokens = usage.input_tokens + usage.output_tokens
    pricing = agent.model.pricing
    usage.cost = (
        usage.input_tokens * pricing.input_per_million_tokens
        + usage.output_tokens * pricing.output_per_million_tokens
    ) / 1_000_000
    usage.currency = pricing.currency if usage.cost else ""
    return usage


class _TokenCheck(grpc.ServerInterceptor):
    """Refuse every call but health without a bearer token whose hash is in the file."""

    def __init__(self, tokens_file: str) -> None:
        text = Path(tokens_file).read_text(encoding="utf-8")
        self._hashes = {entry.sha256 for entry in parse_token_file(text, tokens_file)}

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        if details.method.startswith("/grpc.health."):
            return continuation(details)
        metadata = dict(details.invocation_metadata)
        token = str(metadata.get("authorization", "")).removeprefix("Bearer ")
        if hash_token(token).removeprefix("sha256:") in self._hashes:
            return continuation(details)

        def refuse(_request: object, context: Context) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "fake: no valid bearer token")

        return grpc.unary_unary_rpc_method_handler(refuse)


def serve(
    address: str,
    state: FakeState | None = None,
    tls: tuple[str, str] | None = None,
    tokens_file: str | None = None,
) -> tuple[grpc.Server, int]:
    """Start the fake API with gRPC health reporting SERVING.

    Args:
        address: ``host:port``; port 0 picks a free one.
        state: Shared state; a fresh one if None.
        tls: Files of the certificate and key to serve TLS with; plaintext if None.
        tokens_file: A token file (polyfleet.tokens): calls need one of its tokens.

    Returns:
        The started server and the bound port.

    """
    state = state or FakeState()
    interceptors: list[grpc.ServerInterceptor] = [_TokenCheck(tokens_file)] if tokens_file else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), interceptors=interceptors)
    agent_pb2_grpc.add_AgentServiceServicer_to_server(FakeAgentService(state), server)
    agent_execution_pb2_grpc.add_AgentExecutionServiceServicer_to_server(
        FakeExecutionService(state), server
    )
    add_to_server(server, state.workflows)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        cert, key = (Path(path).read_bytes() for path in tls)
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
    server.start()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return server, port


def _main() -> None:
    # As a fleet child: record the environment, serve until SIGTERM.
    dump = os.environ.get("FAKE_ENV_DUMP")
    if dump:
        with open(dump, "w", encoding="utf-8") as file:
            json.dump(dict(os.environ), file)
    if os.environ.get("FAKE_EXIT_EARLY"):
        print("fake orchestrator: refusing to start", flush=True)
        sys.exit(3)
    cert = os.environ.get("POLYFLEET_API_TLS_CERT")
    tls = (cert, os.environ["POLYFLEET_API_TLS_KEY"]) if cert else None
    tokens_file = os.environ.get("POLYFLEET_AUTH_TOKENS_FILE")
    server, _ = serve(os.environ["POLYFLEET_API_ADDRESS"], tls=tls, tokens_file=tokens_file)
    # The HTTP API only accepts connections: the fleet waits for that before it is up.
    http = None
    if os.environ.get("POLYFLEET_HTTP_ENABLED", "true") != "false":
        host, _, port = os.environ.get("POLYFLEET_HTTP_ADDRESS", "127.0.0.1:7280").rpartition(":")
        http = socket.create_server((host, int(port)))
    stopped = threading.Event()

    def stop(*_: object) -> None:
        stops = os.environ.get("FAKE_STOPS_LOG")
        if stops:
            with open(stops, "a", encoding="utf-8") as file:
                file.write("orchestrator\n")
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    print("fake orchestrator serving", flush=True)
    stopped.wait()
    server.stop(1).wait()
    if http is not None:
        http.close()


if __name__ == "__main__":
    _main()
