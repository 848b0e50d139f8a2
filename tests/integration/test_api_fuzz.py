"""Fuzzing every RPC of the API: bad input never gets INTERNAL or UNKNOWN.

Requests are built from the services' method descriptors with random field values
(extremes, long strings, negative and huge integers, out-of-range timestamps and
durations, unknown enum numbers), plus raw bytes that are not valid protobuf sent through
a generic call. They go to a real orchestrator on loopback with a real LMDB store (and the
real Temporal dev server, which Create needs). The run is seeded and bounded.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest_asyncio
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.client import Client

from polyfleet.config import ExecutionSettings
from polyfleet.error_details import field_violations
from polyfleet.v1 import (
    agent_execution_pb2,
    agent_pb2,
    runner_pb2,
    session_pb2,
    workflow_execution_pb2,
    workflow_pb2,
)
from tests.conftest import Fleet, scripted_agent, start_fleet, stop_fleet

SEED = 9_2026
REQUESTS_PER_METHOD = 60
GARBAGE_PER_METHOD = 20
CONCURRENCY = 64
# Execute and Watch on a live execution block; the client deadline bounds them.
CALL_TIMEOUT = 2.0

_SERVICES = (
    agent_pb2.DESCRIPTOR.services_by_name["AgentService"],
    session_pb2.DESCRIPTOR.services_by_name["SessionService"],
    agent_execution_pb2.DESCRIPTOR.services_by_name["AgentExecutionService"],
    workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"],
    workflow_execution_pb2.DESCRIPTOR.services_by_name["WorkflowExecutionService"],
    runner_pb2.DESCRIPTOR.services_by_name["RunnerService"],
)
_METHODS: tuple[MethodDescriptor, ...] = tuple(m for s in _SERVICES for m in s.methods)

_WORKFLOW = """\
document: {dsl: "1.0.0", namespace: test, name: fuzz-flow, version: "1.0.0"}
do:
  - hello:
      set:
        greeting: hi
"""

# Bodies that are certainly not valid protobuf: a truncated varint, a length past the end,
# an invalid wire type, a field number 0.
_UNDECODABLE = (b"\x08", b"\x0a\x05ab", b"\x0f\x01", b"\x00\x01")

_C = FieldDescriptor
_INTS = {
    _C.CPPTYPE_INT32: (0, 1, -1, 2**31 - 1, -(2**31)),
    _C.CPPTYPE_INT64: (0, 1, -1, 2**63 - 1, -(2**63), 2**40),
    _C.CPPTYPE_UINT32: (0, 1, 2**32 - 1),
    _C.CPPTYPE_UINT64: (0, 1, 2**64 - 1, 2**63),
}
_FLOATS = (0.0, -1.0, 1.5, 3e38, -3e38, math.inf, -math.inf, math.nan)
# google.protobuf.Timestamp and Duration: in range, just out of it, and absurd.
_SECONDS = (0, 1, -1, 1_700_000_000, 253_402_300_799, 253_402_300_800, -62_135_596_801, 2**62)
_NANOS = (0, 1, -1, 999_999_999, 1_000_000_000, 2**31 - 1, -(2**31))


@dataclass
class _Generator:
    rng: random.Random
    strings: list[str] = field(default_factory=list)

    def string(self) -> str:
        r = self.rng.random()
        if r < 0.35 and self.strings:
            return self.rng.choice(self.strings)
        return self.rng.choice(
            ("", "a", "-", "x" * 20_000, "\x00", "ü🙂", "${X}", "a" * 129, "../..", " ", "*")
        )

    def scalar(self, fd: Any) -> Any:
        rng, kind = self.rng, fd.cpp_type
        if kind in _INTS:
            return rng.choice((*_INTS[kind], rng.randint(0, 1000)))
        if kind in (_C.CPPTYPE_DOUBLE, _C.CPPTYPE_FLOAT):
            return rng.choice(_FLOATS)
        if kind == _C.CPPTYPE_BOOL:
            return rng.random() < 0.5
        if kind == _C.CPPTYPE_ENUM:
            assert fd.enum_type is not None
            known = [v.number for v in fd.enum_type.values]
            return rng.choice((*known, 99, -1, 2**31 - 1))
        if kind == _C.CPPTYPE_STRING:
            if fd.type == _C.TYPE_BYTES:
                return rng.choice((b"", b"\x00" * 8, rng.randbytes(64), b"x" * 20_000))
            return self.string()
        raise AssertionError(f"unexpected field type {kind}")

    def fill(self, message: Message, depth: int = 0) -> Message:
        descriptor = message.DESCRIPTOR
        if descriptor.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
            message.seconds = self.rng.choice(_SECONDS)  # type: ignore[attr-defined]
            message.nanos = self.rng.choice(_NANOS)  # type: ignore[attr-defined]
            return message
        for fd in descriptor.fields:
            if self.rng.random() < 0.5:
                continue
            target = getattr(message, fd.name)
            entry = fd.message_type
            is_message = entry is not None
            if entry is not None and entry.GetOptions().map_entry:
                key_fd, value_fd = entry.fields_by_name["key"], entry.fields_by_name["value"]
                for _ in range(self.rng.randint(1, 2)):
                    key = self.scalar(key_fd)
                    if value_fd.cpp_type == _C.CPPTYPE_MESSAGE:
                        if depth < 3:
                            self.fill(target[key], depth + 1)
                    else:
                        target[key] = self.scalar(value_fd)
            elif fd.is_repeated:
                for _ in range(self.rng.randint(1, 3)):
                    if is_message:
                        if depth < 3:
                            self.fill(target.add(), depth + 1)
                    else:
                        target.append(self.scalar(fd))
            elif is_message:
                if depth < 3:
                    self.fill(target, depth + 1)
            else:
                setattr(message, fd.name, self.scalar(fd))
        return message


def _class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


async def _call(
    channel: grpc.aio.Channel, method: MethodDescriptor, body: bytes
) -> tuple[grpc.StatusCode, grpc.aio.AioRpcError | None]:
    """Send raw bytes; the response is not decoded (only the status matters)."""
    identity: Callable[[bytes], bytes] = lambda data: data  # noqa: E731
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                _path(method), request_serializer=identity, response_deserializer=identity
            )(body, timeout=CALL_TIMEOUT)
            async for _ in stream:
                pass
        else:
            await channel.unary_unary(
                _path(method), request_serializer=identity, response_deserializer=identity
            )(body, timeout=CALL_TIMEOUT)
    except grpc.aio.AioRpcError as err:
        return err.code(), err
    return grpc.StatusCode.OK, None


@pytest_asyncio.fixture
async def seeded_fleet(temporal_client: Client, tmp_path: Path) -> AsyncIterator[Fleet]:
    """An orchestrator without runners, short Execute waits, and one of each resource.

    Authentication is off: every request, RunnerService's included, reaches the
    servicers' validation, which is what this fuzzes (test_authz.py covers the roles).
    """
    fleet = await start_fleet(
        temporal_client,
        tmp_path,
        with_runner=False,
        secure=False,
        executions=ExecutionSettings(
            execute_default_wait=timedelta(seconds=1), execute_max_wait=timedelta(seconds=2)
        ),
    )
    try:
        yield fleet
    finally:
        await stop_fleet(fleet)


async def _known_strings(fleet: Fleet) -> list[str]:
    """IDs and names that exist, so fuzzed requests also reach code past the lookups."""
    agent = await fleet.agents.ApplyAgent(
        agent_pb2.ApplyAgentRequest(agent=scripted_agent("fuzz-agent"))
    )
    workflow = await fleet.workflows.ApplyWorkflow(
        workflow_pb2.ApplyWorkflowRequest(
            workflow=workflow_pb2.Workflow(name="fuzz-flow", document=_WORKFLOW)
        )
    )
    session = await fleet.sessions.CreateSession(
        session_pb2.CreateSessionRequest(session=session_pb2.Session(agent="fuzz-agent"))
    )
    execution = await fleet.executions.CreateAgentExecution(
        agent_execution_pb2.CreateAgentExecutionRequest(
            execution=agent_execution_pb2.AgentExecution(agent="fuzz-agent", message="hi")
        )
    )
    workflow_execution = await fleet.workflow_executions.CreateWorkflowExecution(
        workflow_execution_pb2.CreateWorkflowExecutionRequest(
            execution=workflow_execution_pb2.WorkflowExecution(workflow="fuzz-flow")
        )
    )
    return [
        agent.name,
        agent.id,
        workflow.name,
        session.id,
        execution.id,
        execution.session_id,
        workflow_execution.id,
        "scripted",
    ]


def _targeted(known: list[str]) -> list[tuple[MethodDescriptor, Message, str]]:
    """Inputs that once got INTERNAL or RESOURCE_EXHAUSTED, each with the field to name."""
    wex = next(s for s in known if s.startswith("wex-"))
    aex_service = agent_execution_pb2.DESCRIPTOR.services_by_name["AgentExecutionService"]
    wex_service = workflow_execution_pb2.DESCRIPTOR.services_by_name["WorkflowExecutionService"]
    runner = runner_pb2.DESCRIPTOR.services_by_name["RunnerService"]
    agents = agent_pb2.DESCRIPTOR.services_by_name["AgentService"]
    list_aex = agent_execution_pb2.ListAgentExecutionsRequest
    list_wex = workflow_execution_pb2.ListWorkflowExecutionsRequest
    execute = agent_execution_pb2.ExecuteAgentRequest(
        request=agent_execution_pb2.CreateAgentExecutionRequest(
            execution=agent_execution_pb2.AgentExecution(agent="fuzz-agent", message="hi")
        )
    )
    huge, negative = (
        agent_execution_pb2.ExecuteAgentRequest(),
        agent_execution_pb2.ExecuteAgentRequest(),
    )
    huge.CopyFrom(execute)
    huge.timeout.seconds = 2**62
    negative.CopyFrom(execute)
    negative.timeout.seconds = -(2**40)
    workflow_huge = workflow_execution_pb2.ExecuteWorkflowRequest()
    workflow_huge.timeout.seconds = 2**62
    workflow_huge.request.execution.workflow = "fuzz-flow"
    methods = {
        "ListAgentExecutions": aex_service.methods_by_name["ListAgentExecutions"],
        "ListWorkflowExecutions": wex_service.methods_by_name["ListWorkflowExecutions"],
    }
    return [
        (
            methods["ListAgentExecutions"],
            list_aex(created_after=Timestamp(seconds=253_402_300_800)),
            "created_after.seconds",
        ),
        (
            methods["ListAgentExecutions"],
            list_aex(created_before=Timestamp(nanos=1_000_000_000)),
            "created_before.nanos",
        ),
        (
            methods["ListWorkflowExecutions"],
            list_wex(created_after=Timestamp(seconds=-(2**62))),
            "created_after.seconds",
        ),
        (aex_service.methods_by_name["ExecuteAgent"], huge, "timeout.seconds"),
        (aex_service.methods_by_name["ExecuteAgent"], negative, "timeout.seconds"),
        (wex_service.methods_by_name["ExecuteWorkflow"], workflow_huge, "timeout.seconds"),
        (
            runner.methods_by_name["PutCheckpoint"],
            runner_pb2.PutCheckpointRequest(execution_id=wex, sequence=-1, data=b"{}"),
            "sequence",
        ),
        (
            agents.methods_by_name["CreateAgent"],
            agent_pb2.CreateAgentRequest(agent=agent_pb2.Agent(name="X" * 20_000)),
            "agent.name",
        ),
    ]


async def test_known_bad_inputs_get_invalid_argument_naming_the_field(
    seeded_fleet: Fleet,
) -> None:
    known = await _known_strings(seeded_fleet)
    for method, request, expected in _targeted(known):
        code, err = await _call(seeded_fleet.channel, method, request.SerializeToString())
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (method.name, code, err)
        assert err is not None
        # An agent definition names every invalid field; the one targeted comes first.
        assert [v.field for v in field_violations(err)][:1] == [expected], method.name
        assert len(err.details() or "") < 2000


async def test_missing_resources_are_not_found_with_a_bounded_message(
    seeded_fleet: Fleet,
) -> None:
    long_id = "aex-" + "y" * 20_000
    get = agent_execution_pb2.DESCRIPTOR.services_by_name["AgentExecutionService"]
    code, err = await _call(
        seeded_fleet.channel,
        get.methods_by_name["GetAgentExecution"],
        agent_execution_pb2.GetAgentExecutionRequest(id=long_id).SerializeToString(),
    )
    assert code == grpc.StatusCode.NOT_FOUND, err
    assert err is not None and len(err.details() or "") < 500


async def test_fuzzed_requests_never_get_internal_or_unknown(seeded_fleet: Fleet) -> None:
    fleet = seeded_fleet
    generator = _Generator(random.Random(SEED), await _known_strings(fleet))
    cases: list[tuple[MethodDescriptor, bytes, str]] = []
    for method in _METHODS:
        request_class = _class(method.input_type)
        for _ in range(REQUESTS_PER_METHOD):
            request = generator.fill(request_class())
            cases.append((method, request.SerializeToString(), "fuzzed"))
        for _ in range(GARBAGE_PER_METHOD):
            size = generator.rng.randint(1, 64)
            cases.append((method, generator.rng.randbytes(size), "garbage"))
        cases.extend((method, body, "undecodable") for body in _UNDECODABLE)
    generator.rng.shuffle(cases)

    gate = asyncio.Semaphore(CONCURRENCY)

    async def run(case: tuple[MethodDescriptor, bytes, str]) -> tuple[grpc.StatusCode, Any]:
        async with gate:
            return await _call(fleet.channel, case[0], case[1])

    results = await asyncio.gather(*(run(case) for case in cases))

    codes: Counter[str] = Counter()
    bad: list[str] = []
    for (method, body, origin), (code, err) in zip(cases, results, strict=True):
        codes[code.name] += 1
        where = f"{_path(method)} ({origin}, {len(body)} bytes)"
        details = err.details() if err else ""
        if code in (
            grpc.StatusCode.INTERNAL,
            grpc.StatusCode.UNKNOWN,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ):
            bad.append(f"{where}: {code.name}: {(details or '')[:300]}")
        elif origin == "undecodable" and code != grpc.StatusCode.INVALID_ARGUMENT:
            bad.append(f"{where}: undecodable body answered {code.name}")
        elif code == grpc.StatusCode.INVALID_ARGUMENT and err and not field_violations(err):
            bad.append(f"{where}: INVALID_ARGUMENT without a BadRequest: {details[:300]}")
    assert len(cases) >= 2000
    assert not bad, f"{len(bad)} of {len(cases)} requests failed ({dict(codes)}):\n" + "\n".join(
        sorted(set(bad))[:40]
    )
