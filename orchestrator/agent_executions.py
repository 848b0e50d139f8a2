"""Agent executions: what differs from workflow executions (agent, session, user message)."""

from __future__ import annotations

import store
from orchestrator.errors import InvalidArgumentError, NotFoundError
from orchestrator.executions import Executions, Kind
from orchestrator.status import merge_agent_update
from orchestrator.validation import validate_create_agent_execution
from polyfleet import contract
from polyfleet.v1 import activities_pb2, agent_execution_pb2, common_pb2, session_pb2

AgentExecution = agent_execution_pb2.AgentExecution


def _workflow_input(
    execution: AgentExecution, policy: activities_pb2.ActivityPolicy
) -> activities_pb2.AgentExecutionWorkflowInput:
    return activities_pb2.AgentExecutionWorkflowInput(
        execution_id=execution.id, session_id=execution.session_id, policy=policy
    )


AGENT_KIND: Kind[AgentExecution] = Kind(
    name="agent execution",
    repository=lambda db: db.agent_executions,
    merge=merge_agent_update,
    workflow_type=contract.AGENT_EXECUTION_WORKFLOW,
    workflow_id=contract.agent_workflow_id,
    orchestrator_queue=lambda q: q.agent_execution_orchestrator_task_queue,
    runner_queue=lambda q: q.agent_execution_runner_task_queue,
    run_timeout=lambda s: s.agent_run_timeout,
    workflow_input=_workflow_input,
)


class AgentExecutions(Executions[AgentExecution]):
    """Agent executions: the shared service plus agent and session handling on Create."""

    kind = AGENT_KIND

    async def create_from(
        self, request: agent_execution_pb2.CreateAgentExecutionRequest
    ) -> AgentExecution:
        """Validate a Create request, persist PENDING, start the workflow.

        Raises:
            InvalidArgumentError: A field of the request is invalid.
            NotFoundError: The agent or session does not exist.
            WorkflowStartError: Temporal did not start the workflow; the execution is
                persisted FAILED with the reason.
        """
        validate_create_agent_execution(request)
        spec = request.execution
        try:
            agent = await self._db.agents.get(spec.agent)
        except store.NotFoundError:
            raise NotFoundError("agent", spec.agent) from None
        session = await self._session_for(spec.session_id, agent.name)
        execution_id = store.new_id("aex")
        execution = AgentExecution(
            id=execution_id,
            agent=agent.name,
            session_id=session.id,
            message=spec.message,
            labels=dict(spec.labels),
            request_id=request.request_id,
            workflow_id=AGENT_KIND.workflow_id(execution_id),
            status=agent_execution_pb2.AgentExecutionStatus(
                phase=common_pb2.EXECUTION_PHASE_PENDING
            ),
        )
        user_message = common_pb2.Message(
            id=f"{execution_id}/user", role=common_pb2.MESSAGE_ROLE_USER, content=spec.message
        )
        user_message.create_time.GetCurrentTime()
        first = common_pb2.ExecutionUpdate(
            phase=common_pb2.EXECUTION_PHASE_PENDING, messages=[user_message]
        )
        return await self.create(execution, first)

    async def execute(self, request: agent_execution_pb2.ExecuteAgentRequest) -> AgentExecution:
        """Create an execution and wait for its terminal state (see ``execute_wait``)."""
        wait = self.execute_wait(request.timeout if request.HasField("timeout") else None)
        execution = await self.create_from(request.request)
        return await self.wait_terminal(execution.id, wait)

    async def list_from(
        self, request: agent_execution_pb2.ListAgentExecutionsRequest
    ) -> agent_execution_pb2.ListAgentExecutionsResponse:
        """List executions for a List request."""
        filters: dict[str, str | int] = {}
        if request.agent:
            filters["agent"] = request.agent
        if request.session_id:
            filters["session_id"] = request.session_id
        if request.phase:
            filters["phase"] = int(request.phase)
        items, token = await self.list(filters, request.page_size, request.page_token)
        return agent_execution_pb2.ListAgentExecutionsResponse(
            executions=items, next_page_token=token
        )

    async def _session_for(self, session_id: str, agent: str) -> session_pb2.Session:
        if not session_id:
            return await self._db.sessions.create(session_pb2.Session(agent=agent))
        try:
            session = await self._db.sessions.get(session_id)
        except store.NotFoundError:
            raise NotFoundError("session", session_id) from None
        if session.agent and session.agent != agent:
            raise InvalidArgumentError(
                "execution.session_id",
                f"session '{session_id}' belongs to agent '{session.agent}', not '{agent}'",
            )
        return session
