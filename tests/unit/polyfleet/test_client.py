"""The Python client without a fleet: watch resume over a fake stream, wait, errors, sync."""

# The servicer implements the generated gRPC interface, so it keeps its names.
# ruff: noqa: N802

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent import futures

import grpc
import pytest

from polyfleet.client import PolyfleetError, SyncClient, WaitTimeoutError, WatchError
from polyfleet.client.watch import ExecutionWatch, wait_terminal
from polyfleet.v1 import agent_execution_pb2, agent_pb2, agent_pb2_grpc, common_pb2
from tests.helpers import rpc_error

RUNNING = common_pb2.EXECUTION_PHASE_RUNNING
COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED


def _event(sequence: int) -> common_pb2.ExecutionEvent:
    return common_pb2.ExecutionEvent(execution_id="aex-1", sequence=sequence, phase=RUNNING)


class FakeCalls:
    """ExecutionCalls whose streams follow a script: events, then an error or an end."""

    def __init__(self, streams: list[tuple[int, PolyfleetError | None]], last: int = 6) -> None:
        # One entry per stream: how many events it yields before it fails (or ends).
        self.streams = streams
        self.last = last
        self.after: list[int] = []
        self.phase = COMPLETED

    async def get(self, execution_id: str) -> agent_execution_pb2.AgentExecution:
        execution = agent_execution_pb2.AgentExecution(id=execution_id)
        execution.status.phase = self.phase
        return execution

    async def cancel(self, execution_id: str) -> agent_execution_pb2.AgentExecution:
        return await self.get(execution_id)

    async def events(
        self, execution_id: str, after_sequence: int = 0
    ) -> AsyncIterator[common_pb2.ExecutionEvent]:
        self.after.append(after_sequence)
        count, error = self.streams.pop(0) if self.streams else (self.last, None)
        for sequence in range(after_sequence + 1, min(after_sequence + count, self.last) + 1):
            yield _event(sequence)
        if error is not None:
            raise error


def _unavailable() -> PolyfleetError:
    return PolyfleetError("connection reset", code=grpc.StatusCode.UNAVAILABLE)


async def test_a_broken_stream_resumes_after_the_last_event_seen() -> None:
    calls = FakeCalls([(3, _unavailable()), (2, _unavailable())])
    watch = ExecutionWatch(calls, "aex-1", backoff=0)

    seen = [event.sequence async for event in watch]

    assert seen == [1, 2, 3, 4, 5, 6]
    assert calls.after == [0, 3, 5]
    assert watch.execution is not None and watch.execution.status.phase == COMPLETED
    assert (await watch.result()).id == "aex-1"


async def test_a_stream_that_ends_before_the_execution_did_is_resumed() -> None:
    calls = FakeCalls([(2, None)])
    calls.phase = RUNNING
    watch = ExecutionWatch(calls, "aex-1", 0, reconnects=1, backoff=0)

    with pytest.raises(WatchError, match="gave up watching aex-1: the watch ended"):
        async for _ in watch:
            pass

    # Events reset the count of failures: the stream that brought 3..6 was not one.
    assert calls.after == [0, 2, 6]


async def test_a_watch_starts_after_the_given_sequence() -> None:
    calls = FakeCalls([])

    seen = [event.sequence async for event in ExecutionWatch(calls, "aex-1", 4)]

    assert (seen, calls.after) == ([5, 6], [4])


async def test_an_error_retrying_cannot_fix_is_raised_at_once() -> None:
    denied = PolyfleetError("no", code=grpc.StatusCode.NOT_FOUND)
    calls = FakeCalls([(1, denied)])

    with pytest.raises(PolyfleetError) as raised:
        async for _ in ExecutionWatch(calls, "aex-1", backoff=0):
            pass

    assert raised.value.code == grpc.StatusCode.NOT_FOUND
    assert calls.after == [0]


async def test_wait_gives_up_naming_the_execution_and_its_phase() -> None:
    calls = FakeCalls([])
    calls.phase = RUNNING

    with pytest.raises(WaitTimeoutError) as raised:
        await wait_terminal(calls, "aex-1", 0.02, poll_interval=0.01)

    assert str(raised.value) == "execution aex-1 is still RUNNING after 0.02 s"
    assert (raised.value.execution_id, raised.value.phase) == ("aex-1", RUNNING)


def test_an_rpc_error_keeps_its_code_and_details() -> None:
    error = PolyfleetError.from_rpc(rpc_error(grpc.StatusCode.NOT_FOUND, 'agent "x" not found'))

    assert error.code == grpc.StatusCode.NOT_FOUND
    assert str(error) == 'NOT_FOUND: agent "x" not found'
    assert (error.reason, error.execution_id, error.field_violations) == ("", "", [])


class _Agents(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self) -> None:
        self.metadata: list[dict[str, str | bytes]] = []

    def GetAgent(
        self, request: agent_pb2.GetAgentRequest, context: grpc.ServicerContext
    ) -> agent_pb2.Agent:
        self.metadata.append(dict(context.invocation_metadata()))
        if request.name != "assistant":
            context.abort(grpc.StatusCode.NOT_FOUND, f'agent "{request.name}" not found')
        return agent_pb2.Agent(name=request.name, version=1)


@pytest.fixture
def agents_server() -> Iterator[tuple[str, _Agents]]:
    """A gRPC server with only AgentService.GetAgent, on a free loopback port."""
    # Only GetAgent is served; the other methods answer UNIMPLEMENTED, as generated.
    servicer = _Agents()  # type: ignore[abstract]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(None)


def test_the_sync_client_blocks_sends_the_token_and_raises_polyfleet_errors(
    agents_server: tuple[str, _Agents],
) -> None:
    address, servicer = agents_server
    with SyncClient(address, token="s3cret") as client:
        agent = client.call(lambda c: c.agents.get("assistant"))
        with pytest.raises(PolyfleetError) as raised:
            client.call(lambda c: c.agents.get("missing"))

    assert (agent.name, agent.version) == ("assistant", 1)
    assert raised.value.code == grpc.StatusCode.NOT_FOUND
    assert servicer.metadata[0]["authorization"] == "Bearer s3cret"
