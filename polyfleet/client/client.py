"""The asyncio client: :class:`Client`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from pydantic import SecretStr

from polyfleet.client.definitions import Agents, Sessions, Workflows
from polyfleet.client.events import Events
from polyfleet.client.executions import (
    AgentExecution,
    AgentExecutions,
    Strategy,
    WorkflowExecution,
    WorkflowExecutions,
)
from polyfleet.client.fleet import Fleet
from polyfleet.client.schedules import Schedules
from polyfleet.client.transport import Transport, open_channel
from polyfleet.client.watch import E, ExecutionCalls, ExecutionWatch, wait_terminal
from polyfleet.config import ApiSettings
from polyfleet.contract import Execution, is_workflow_execution
from polyfleet.v1 import common_pb2


class Client:
    """One connection to the polyfleet API, with a typed namespace per service.

    Create it with :meth:`connect` (or around an existing channel with the constructor)
    and close it with :meth:`close` or ``async with``::

        async with await Client.connect("127.0.0.1:7234") as client:
            execution = await client.run_agent("assistant", "Hello", wait=True)

    Every failed call raises :class:`~polyfleet.client.errors.PolyfleetError`.

    Attributes:
        channel: The gRPC channel every call uses.
        agents: AgentService.
        sessions: SessionService.
        agent_executions: AgentExecutionService.
        workflows: WorkflowService.
        workflow_executions: WorkflowExecutionService.
        fleet: FleetService (the fleet status).
        schedules: ScheduleService (the schedules of workflows).
        events: EventService (publish and list CloudEvents).

    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        transport: Transport | None = None,
        owns_channel: bool = False,
    ) -> None:
        """Wrap a channel.

        Args:
            channel: An open channel to the API.
            transport: Metadata and deadline of the calls; defaults to none and 30 s.
            owns_channel: Close the channel with the client.

        """
        transport = transport or Transport()
        self.channel = channel
        self.agents = Agents(channel, transport)
        self.sessions = Sessions(channel, transport)
        self.agent_executions = AgentExecutions(channel, transport)
        self.workflows = Workflows(channel, transport)
        self.workflow_executions = WorkflowExecutions(channel, transport)
        self.fleet = Fleet(channel, transport)
        self.schedules = Schedules(channel, transport)
        self.events = Events(channel, transport)
        self._owns_channel = owns_channel

    @classmethod
    async def connect(
        cls,
        address: str | None = None,
        *,
        settings: ApiSettings | None = None,
        tls: bool | None = None,
        root_cert: Path | None = None,
        token: str | None = None,
    ) -> Client:
        """Open a client; arguments override the ``POLYFLEET_*`` settings.

        Args:
            address: ``host:port`` of the API; default ``POLYFLEET_API_ADDRESS``.
            settings: All connection settings; read from the environment when omitted.
            tls: Speak TLS (``POLYFLEET_API_TLS``).
            root_cert: PEM file of the server's CA (``POLYFLEET_API_TLS_ROOT_CERT``).
            token: Bearer token for every call (``POLYFLEET_API_TOKEN``).

        Returns:
            A client owning its channel. gRPC connects lazily: an unreachable API shows
            as UNAVAILABLE on the first call.

        """
        settings = settings or ApiSettings()
        overrides: dict[str, Any] = {}
        if address:
            overrides["api_address"] = address
        if tls is not None:
            overrides["api_tls"] = tls
        if root_cert is not None:
            overrides["api_tls_root_cert"] = root_cert
        if token is not None:
            overrides["api_token"] = SecretStr(token)
        if overrides:
            settings = settings.model_copy(update=overrides)
        return cls(
            open_channel(settings),
            transport=Transport.for_settings(settings),
            owns_channel=True,
        )

    async def close(self) -> None:
        """Close the channel, if the client opened it."""
        if self._owns_channel:
            await self.channel.close()

    async def __aenter__(self) -> Client:
        """Use the client in ``async with``; it is closed on exit."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the client."""
        await self.close()

    # --- either kind of execution, by ID prefix -------------------------------------------

    def executions(self, execution_id: str) -> ExecutionCalls[Execution]:
        """The service of an execution, chosen by its ID's prefix.

        Args:
            execution_id: ``wex-…`` for a workflow execution; anything else is taken for an
                agent execution (``aex-…``), whose service reports unknown IDs.

        Returns:
            The calls of that kind.

        """
        if is_workflow_execution(execution_id):
            return self.workflow_executions
        return self.agent_executions

    async def get(self, execution_id: str) -> Execution:
        """Fetch an execution of either kind."""
        return await self.executions(execution_id).get(execution_id)

    async def cancel(self, execution_id: str) -> Execution:
        """Ask for an execution of either kind to be cancelled; return it after the request."""
        return await self.executions(execution_id).cancel(execution_id)

    def watch(self, execution_id: str, after_sequence: int = 0) -> ExecutionWatch[Execution]:
        """Follow an execution of either kind until it ends, resuming after broken streams.

        Args:
            execution_id: The execution.
            after_sequence: Yield only events after this sequence number.

        Returns:
            An async iterator of its events; its ``execution`` is the terminal execution
            once iteration has ended.

        """
        return ExecutionWatch(self.executions(execution_id), execution_id, after_sequence)

    async def wait(
        self,
        execution_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - named as in Temporal's SDK
        *,
        poll_interval: float | None = None,
    ) -> Execution:
        """Wait until an execution of either kind is terminal.

        Args:
            execution_id: The execution.
            timeout: Give up after this many seconds; None waits as long as it takes.
            poll_interval: Pause between two reads (default: 0.25 s).

        Returns:
            The execution in its terminal phase.

        Raises:
            WaitTimeoutError: It was not terminal in time; it keeps running.

        """
        calls = self.executions(execution_id)
        return await wait_terminal(calls, execution_id, timeout, poll_interval=poll_interval)

    # --- create and optionally wait -------------------------------------------------------

    async def run_agent(
        self,
        agent: str,
        message: str,
        *,
        session_id: str = "",
        labels: Mapping[str, str] | None = None,
        priority: int = 0,
        request_id: str = "",
        strategy: Strategy = common_pb2.MULTITASK_STRATEGY_UNSPECIFIED,
        wait: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - named as in Temporal's SDK
    ) -> AgentExecution:
        """Start an agent execution and, with ``wait``, return it once terminal.

        The arguments before ``wait`` are those of :meth:`AgentExecutions.create`. With
        ``wait`` the client waits for the terminal phase (so without the server's limit),
        giving up after ``timeout`` seconds (None: no limit).

        Returns:
            The new execution (normally PENDING), or with ``wait`` the terminal one.

        Raises:
            PolyfleetError: The API refused the request or a call failed.
            WaitTimeoutError: With ``wait``: not terminal within ``timeout``.

        """
        created = await self.agent_executions.create(
            agent,
            message,
            session_id=session_id,
            labels=labels,
            priority=priority,
            request_id=request_id,
            strategy=strategy,
        )
        return await _settled(self.agent_executions, created, wait, timeout)

    async def run_workflow(
        self,
        workflow: str,
        workflow_input: Mapping[str, Any] | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        priority: int = 0,
        request_id: str = "",
        wait: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - named as in Temporal's SDK
    ) -> WorkflowExecution:
        """Start a workflow execution and, with ``wait``, return it once terminal.

        As :meth:`run_agent`, with the arguments of :meth:`WorkflowExecutions.create` before
        ``wait``.
        """
        created = await self.workflow_executions.create(
            workflow, workflow_input, labels=labels, priority=priority, request_id=request_id
        )
        return await _settled(self.workflow_executions, created, wait, timeout)


async def _settled(
    calls: ExecutionCalls[E],
    created: E,
    wait: bool,
    timeout: float | None,  # noqa: ASYNC109 - named as in Temporal's SDK
) -> E:
    """``created`` itself, or with ``wait`` the same execution once terminal."""
    if not wait:
        return created
    return await wait_terminal(calls, created.id, timeout)
