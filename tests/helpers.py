"""Test helpers: polling assertions, waits and free ports, instead of sleeps; gRPC errors."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from temporalio.client import Client, WorkflowExecutionStatus

from polyfleet.client import Execution, ExecutionCalls, WaitTimeoutError
from polyfleet.client.watch import wait_terminal as client_wait_terminal
from polyfleet.ports import free_port as free_port
from polyfleet.roles import Role
from polyfleet.v1 import agent_execution_pb2

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from store._engine import Engine, Txn
    from tests.conftest import Fleet

T = TypeVar("T")
E = TypeVar("E", bound=Execution)


def served_methods() -> list[MethodDescriptor]:
    """Every method the orchestrator's server answers (``orchestrator.app.SERVED_SERVICES``)."""
    from orchestrator.app import SERVED_SERVICES

    return [method for service in SERVED_SERVICES for method in service.methods]


def method_path(method: MethodDescriptor) -> str:
    """The gRPC path of ``method``: ``/package.Service/Method``."""
    return f"/{method.containing_service.full_name}/{method.name}"


def system_tool(name: str, target: str) -> str:
    """The path of a tool that ``make <target>`` installs with apt-get, e.g. kubectl.

    When it is missing, the test fails, or skips when `make` could not install it here and
    left the reason in ``.tools/<name>.unavailable``.
    """
    found = shutil.which(name)
    if found:
        return found
    unavailable = Path(__file__).resolve().parents[1] / ".tools" / f"{name}.unavailable"
    if unavailable.exists():
        pytest.skip(f"{name} cannot be installed here: {unavailable.read_text().strip()}")
    pytest.fail(f"{name} is not installed: run `make {target}` (apt-get install {name})")


async def assert_eventually(
    probe: Callable[[], Awaitable[T]],
    condition: Callable[[T], bool],
    timeout: float = 30.0,
    interval: float = 0.1,
    message: str = "condition not met",
) -> T:
    """Poll ``probe`` until ``condition`` holds on its result, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = await probe()
        if condition(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout}s; last value: {last!r}")
        await asyncio.sleep(interval)


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    """An error as a gRPC call raises it, without metadata (so without error details)."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


async def create_agent_execution(
    fleet: Fleet, agent: str, message: str, session_id: str = ""
) -> agent_execution_pb2.AgentExecution:
    """Create an execution of ``agent`` on ``message`` over the fleet's API (admin)."""
    return await fleet.executions.CreateAgentExecution(
        agent_execution_pb2.CreateAgentExecutionRequest(
            execution=agent_execution_pb2.AgentExecution(
                agent=agent, message=message, session_id=session_id
            )
        )
    )


async def wait_terminal(executions: ExecutionCalls[E], execution_id: str, timeout: float = 60) -> E:
    """Wait with the Python client until an execution is terminal, or fail the test.

    Args:
        executions: ``fleet.client.agent_executions`` or ``fleet.client.workflow_executions``.
        execution_id: The execution.
        timeout: Seconds before the test fails.

    Returns:
        The execution in its terminal phase.

    """
    try:
        return await client_wait_terminal(executions, execution_id, timeout, poll_interval=0.1)
    except WaitTimeoutError as exc:
        raise AssertionError(f"{exc}; it did not finish") from exc


async def workflow_closes_as(
    temporal: Client, workflow_id: str, status: WorkflowExecutionStatus, timeout: float = 10
) -> None:
    """Wait until Temporal shows the workflow closed with ``status``.

    A workflow persists its execution's terminal phase (the local UpdateStatus) and only
    then closes, so the phase can be read a moment before Temporal shows the close.
    """
    handle = temporal.get_workflow_handle(workflow_id)

    async def current() -> WorkflowExecutionStatus | None:
        return (await handle.describe()).status

    await assert_eventually(current, lambda s: s == status, timeout=timeout)


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    """One HTTP/1.1 request to 127.0.0.1:``port``: the status and the body (0 and the error
    when nothing answers), e.g. a runner's health endpoints."""
    return await http_request(port, f"{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())


async def http_request(port: int, request: bytes) -> tuple[int, str]:
    """Send ``request`` as it is to 127.0.0.1:``port``; the status and the body."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as err:
        return 0, str(err)
    try:
        writer.write(request)
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode()


async def run_cli(fleet: Fleet, *args: str, role: Role = Role.ADMIN) -> tuple[int, str, str]:
    """Run ``python -m polyfleet.cli`` against ``fleet`` with ``role``'s credentials.

    The fleet's address reaches the CLI through ``POLYFLEET_API_ADDRESS``.

    Returns:
        The exit code, standard output and standard error.

    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "polyfleet.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **fleet.client_env(role)},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def install_tracing(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Turn tracing on for one test, its spans kept in memory (read the exporter's).

    The process's global provider and polyfleet's tracing state come back after the test.
    """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from polyfleet.telemetry import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_provider", None)
    monkeypatch.setattr(tracing, "_tracer", None)
    monkeypatch.setattr(trace, "set_tracer_provider", lambda _provider: None)
    tracing.install(provider)
    return exporter


def scrape_metrics(port: int) -> str:
    """The text a process's ``/metrics`` endpoint on 127.0.0.1:``port`` serves."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


@asynccontextmanager
async def held_writer(engine: Engine) -> AsyncIterator[None]:
    """Keep the store's writer thread busy in a write until the block ends, then let it go on."""
    started = threading.Event()
    release = threading.Event()

    def hold(txn: Txn) -> None:
        started.set()
        assert release.wait(30), "the test never released the writer"

    holder = asyncio.ensure_future(engine.write(hold))
    try:
        assert await asyncio.to_thread(started.wait, 30), "the writer never ran the holder"
        yield
    finally:
        release.set()
        await holder
