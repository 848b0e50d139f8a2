"""The runner activities: EnsureThread, ExecuteGraphton, ExecuteWorkflow."""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from polyfleet import contract
from polyfleet.v1 import activities_pb2, common_pb2
from runner.errors import ExecutionClosedError
from runner.heartbeat import heartbeating
from runner.reporter import RunnerClient
from runner.scripted import ScriptedModelError, scripted_reply

logger = logging.getLogger(__name__)


def _log_extra(execution_id: str) -> dict[str, str]:
    info = activity.info()
    return {
        "execution_id": execution_id,
        "workflow_id": info.workflow_id or "",
        "run_id": info.workflow_run_id or "",
    }


class _Reports:
    """Numbers the reports of one activity attempt, so retries reuse the same IDs."""

    def __init__(self, client: RunnerClient, execution_id: str) -> None:
        info = activity.info()
        self._prefix = f"{info.workflow_run_id}/{info.activity_id}/{info.attempt}"
        self._counter = itertools.count(1)
        self._client = client
        self.execution_id = execution_id

    def next_id(self) -> str:
        return f"{self._prefix}/{next(self._counter)}"

    async def send(self, update: common_pb2.ExecutionUpdate) -> None:
        await self._client.report(self.execution_id, self.next_id(), update)


class RunnerActivities:
    """Activity implementations bound to one RunnerService client."""

    def __init__(self, client: RunnerClient, heartbeat_interval: timedelta) -> None:
        self._client = client
        self._heartbeat_interval = heartbeat_interval

    @activity.defn(name=contract.ENSURE_THREAD)
    async def ensure_thread(
        self, params: activities_pb2.EnsureThreadInput
    ) -> activities_pb2.EnsureThreadOutput:
        """Get or create the conversation thread of the execution's session."""
        response = await self._client.ensure_thread(params.execution_id)
        logger.info(
            "thread %s ready (created=%s)",
            response.thread_id,
            response.created,
            extra=_log_extra(params.execution_id),
        )
        return activities_pb2.EnsureThreadOutput(
            thread_id=response.thread_id, created=response.created
        )

    @activity.defn(name=contract.EXECUTE_GRAPHTON)
    async def execute_graphton(
        self, params: activities_pb2.ExecuteGraphtonInput
    ) -> activities_pb2.ExecuteGraphtonOutput:
        """Run the agent, reporting progress to RunnerService as it happens."""
        execution_id = params.execution_id
        reports = _Reports(self._client, execution_id)
        try:
            async with heartbeating(self._heartbeat_interval):
                return await self._run_agent(params, reports)
        except ExecutionClosedError as err:
            raise ApplicationError(
                f"the execution ended while the agent ran: {err}",
                type="ExecutionClosed",
                non_retryable=True,
            ) from err

    async def _run_agent(
        self, params: activities_pb2.ExecuteGraphtonInput, reports: _Reports
    ) -> activities_pb2.ExecuteGraphtonOutput:
        execution_id = params.execution_id
        context = await self._client.context(execution_id)
        agent = context.agent
        await reports.send(common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_RUNNING))
        logger.info("running agent %s", agent.name, extra=_log_extra(execution_id))
        if agent.model.provider != "scripted":
            raise ApplicationError(
                f"model provider '{agent.model.provider}' is not available in this runner",
                type="ModelProviderError",
                non_retryable=True,
            )
        history_words = sum(len(m.content.split()) for m in context.history)
        try:
            reply = scripted_reply(agent.model.scripted, context.execution.message, history_words)
        except ScriptedModelError as err:
            raise ApplicationError(str(err), type="ModelProviderError", non_retryable=True) from err
        message_id = f"{execution_id}/assistant"
        for chunk in reply.chunks:
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            await reports.send(
                common_pb2.ExecutionUpdate(content_delta=chunk, delta_message_id=message_id)
            )
        answer = common_pb2.Message(
            id=message_id,
            role=common_pb2.MESSAGE_ROLE_ASSISTANT,
            content=reply.text,
            name=agent.name,
        )
        answer.create_time.GetCurrentTime()
        usage = common_pb2.Usage(
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            total_tokens=reply.input_tokens + reply.output_tokens,
        )
        await reports.send(
            common_pb2.ExecutionUpdate(messages=[answer], output_text=reply.text, usage=usage)
        )
        user = common_pb2.Message(
            id=f"{execution_id}/user",
            role=common_pb2.MESSAGE_ROLE_USER,
            content=context.execution.message,
        )
        await self._client.append_thread(params.thread_id, reports.next_id(), [user, answer])
        return activities_pb2.ExecuteGraphtonOutput(
            final_message_id=message_id, message_count=1, usage=usage
        )

    @activity.defn(name=contract.EXECUTE_WORKFLOW)
    async def execute_workflow(
        self, params: activities_pb2.ExecuteWorkflowInput
    ) -> activities_pb2.ExecuteWorkflowOutput:
        """Not available yet: the Serverless Workflow runtime is a later milestone."""
        raise ApplicationError(
            "ExecuteWorkflow is not available yet in this runner "
            f"(execution {params.execution_id})",
            type="NotImplemented",
            non_retryable=True,
        )
