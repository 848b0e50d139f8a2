"""One ExecuteGraphton run: fetch the context, build the graph, stream it, report, persist.

The runner is stateless: the execution, agent and thread history come from
RunnerService; progress goes back as it happens; the turn is appended to the thread
at the end, so the next execution of the session continues it on any runner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.errors import GraphRecursionError

from polyfleet.config import RunnerSettings
from polyfleet.v1 import activities_pb2, agent_pb2, common_pb2, runner_pb2
from runner.errors import RunnerError
from runner.graphton.agent import build_agent_graph
from runner.graphton.callbacks import ProgressCallbacks
from runner.graphton.errors import (
    MODEL_PROVIDER_UNAVAILABLE,
    AgentTimeoutError,
    GraphtonError,
    MaxStepsExceededError,
)
from runner.graphton.graphs import load_graph
from runner.graphton.history import to_langchain, to_thread, user_message
from runner.graphton.mcp import open_mcp_tools
from runner.graphton.models import ModelSpec, build_model
from runner.graphton.output import schema_instructions, structured_output
from runner.graphton.provider_errors import classify_model_error
from runner.graphton.retry import Log, ModelCall, retrying_model_call
from runner.graphton.stream import MessageIds, stream_graph
from runner.graphton.subagents import sub_agent_tool
from runner.progress import ProgressReporter
from runner.runner_client import RunnerClient
from runner.secrets import Secrets

DEFAULT_MAX_STEPS = 25


@dataclass
class _Run:
    """What one execution's graph run needs, built before it starts."""

    agent: agent_pb2.Agent
    secrets: Secrets
    progress: ProgressReporter
    settings: RunnerSettings
    log: Log

    @property
    def recursion_limit(self) -> int:
        return self.agent.limits.max_steps or DEFAULT_MAX_STEPS

    def model(self, config: agent_pb2.ModelConfig) -> ModelSpec:
        return build_model(
            config,
            self.secrets,
            initial_backoff=self.settings.model_retry_initial_backoff.total_seconds(),
            max_backoff=self.settings.model_retry_max_backoff.total_seconds(),
        )

    def model_call(self, spec: ModelSpec, tools: Sequence[BaseTool]) -> ModelCall:
        bound = spec.chat_model.bind_tools(tools) if tools else spec.chat_model
        return retrying_model_call(
            bound, spec.retry, spec.where, self.secrets.scrub, log=self.log, labels=spec.labels
        )

    async def tools(
        self, servers: Sequence[agent_pb2.McpServer], stack: AsyncExitStack
    ) -> list[BaseTool]:
        return await open_mcp_tools(
            servers,
            self.secrets,
            stack,
            connect_timeout=self.settings.mcp_connect_timeout.total_seconds(),
        )


def _unique(tools: list[BaseTool]) -> list[BaseTool]:
    names = [tool.name for tool in tools]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise GraphtonError(
            f"tool names must be unique across MCP servers and sub-agents: {duplicates}",
            error_type="ToolNameConflict",
        )
    return tools


async def _built_in_agent(run: _Run, stack: AsyncExitStack) -> Runnable[Any, Any]:
    agent = run.agent
    spec = run.model(agent.model)
    tools = await run.tools(agent.mcp_servers, stack)
    for sub in agent.sub_agents:
        sub_spec = run.model(sub.model if sub.model.provider else agent.model)
        sub_tools = _unique(await run.tools(sub.mcp_servers, stack))
        sub_graph = build_agent_graph(
            run.model_call(sub_spec, sub_tools), sub_tools, sub.instructions
        )
        sub_callbacks = ProgressCallbacks(run.progress, sub_spec.pricing)
        limit = run.recursion_limit

        def sub_config(
            callbacks: ProgressCallbacks = sub_callbacks, limit: int = limit
        ) -> RunnableConfig:
            return RunnableConfig(callbacks=[callbacks], recursion_limit=limit)

        tools.append(sub_agent_tool(sub, sub_graph, run.progress, sub_config))
    tools = _unique(tools)
    instructions = agent.instructions
    if agent.output_schema.fields:
        instructions = "\n\n".join(
            p for p in (instructions, schema_instructions(agent.output_schema)) if p
        )
    return build_agent_graph(run.model_call(spec, tools), tools, instructions)


def _final_answer(messages: Sequence[BaseMessage], first_new: int) -> AIMessage | None:
    for message in reversed(messages[first_new:]):
        if isinstance(message, AIMessage):
            return message
    return None


def _unexpected(err: Exception, secrets: Secrets) -> GraphtonError:
    # A provider failure escaping a bring-your-own graph still gets its stable type;
    # anything else is a bug in the graph or the runtime.
    error = classify_model_error(err, "the graph's model", secrets.scrub)
    if error.status_code is not None or error.error_type == MODEL_PROVIDER_UNAVAILABLE:
        return error
    return GraphtonError(f"{type(err).__name__}: {secrets.scrub(str(err))}")


async def _run_graph(
    run: _Run,
    context_messages: list[BaseMessage],
    thread_id: str,
    ids: MessageIds,
) -> list[BaseMessage]:
    agent = run.agent
    config = RunnableConfig(
        callbacks=[ProgressCallbacks(run.progress, agent.model.pricing)],
        recursion_limit=run.recursion_limit,
        configurable={"thread_id": thread_id},
        run_name=agent.name,
    )
    timeout = agent.limits.timeout.ToTimedelta().total_seconds() or None
    deadline = asyncio.timeout(timeout)  # the whole run, MCP servers' start included
    stack = AsyncExitStack()  # MCP sessions, closed whatever happens
    try:
        async with deadline:
            if agent.graph:
                graph: Runnable[Any, Any] = load_graph(agent.graph)
                system = [SystemMessage(content=agent.instructions)] if agent.instructions else []
                inputs = {"messages": [*system, *context_messages]}
            else:
                graph = await _built_in_agent(run, stack)
                inputs = {"messages": context_messages}
            return await stream_graph(graph, inputs, config, run.progress, ids, agent.name)
    except TimeoutError:
        if deadline.expired():
            raise AgentTimeoutError(
                f"the agent did not finish within its limits.timeout of {timeout:g} s"
            ) from None
        raise
    except GraphRecursionError:
        raise MaxStepsExceededError(
            f"the agent did not finish within {run.recursion_limit} steps (limits.max_steps)"
        ) from None
    finally:
        await _close(stack, run)


async def _close(stack: AsyncExitStack, run: _Run) -> None:
    # Closed without the run's exception: thrown into MCP's anyio task groups it would
    # come back wrapped in an ExceptionGroup, and a failure to close a session must not
    # turn a finished run into a failed one.
    try:
        await stack.aclose()
    except Exception as err:  # noqa: BLE001 - logged; the run's own outcome stands
        reason = run.secrets.scrub(f"{type(err).__name__}: {err}")
        run.log.warning("closing MCP sessions failed: %s", reason)


def _leaf(err: BaseException) -> BaseException:
    while isinstance(err, BaseExceptionGroup) and len(err.exceptions) == 1:
        err = err.exceptions[0]
    return err


async def run_graphton(
    params: activities_pb2.ExecuteGraphtonInput,
    client: RunnerClient,
    progress: ProgressReporter,
    settings: RunnerSettings,
    log: Log,
) -> activities_pb2.ExecuteGraphtonOutput:
    """Run one agent execution to its final answer.

    Raises:
        GraphtonError: The execution failed; ``error_type`` and a secret-free message
            say why.
        RunnerError: RunnerService refused a report or could not be reached.

    """
    execution_id = params.execution_id
    context = await client.context(execution_id)
    agent = context.agent
    secrets = Secrets.load(
        agent.secrets,
        use_environment=settings.secrets_from_environment,
        secrets_file=settings.secrets_file,
    )
    progress.redactor = secrets.redactor
    progress.max_output_bytes = context.max_output_bytes
    progress.send(common_pb2.ExecutionUpdate(phase=common_pb2.EXECUTION_PHASE_RUNNING))
    log.info("running agent %s", agent.name)
    run = _Run(agent, secrets, progress, settings, log)
    messages = [*to_langchain(context.history), HumanMessage(content=context.execution.message)]
    ids = MessageIds(execution_id)
    try:
        final = await _run_graph(run, messages, params.thread_id, ids)
        answer = _final_answer(final, len(messages))
        update = common_pb2.ExecutionUpdate(output_text=answer.text if answer else "")
        if agent.output_schema.fields:
            update.output.CopyFrom(structured_output(update.output_text, agent.output_schema))
    except (GraphtonError, RunnerError):
        raise
    except Exception as err:  # noqa: BLE001 - becomes a typed, scrubbed failure
        leaf = _leaf(err)
        if isinstance(leaf, GraphtonError | RunnerError):
            raise leaf from None
        raise _unexpected(leaf if isinstance(leaf, Exception) else err, secrets) from None
    # The whole turn, tool calls and their results included, so a later turn can
    # refer back to what the tools returned. It rides on the answer's report.
    turn = [
        user_message(execution_id, context.execution.message),
        *to_thread(final[len(messages) :], ids, agent.name, secrets.scrub),
    ]
    append = runner_pb2.AppendThreadMessagesRequest(
        thread_id=params.thread_id, report_id=progress.next_id(), messages=turn
    )
    progress.send(update, thread_append=append)
    await progress.flush()
    final_id = ids.assistant(answer) if answer is not None and answer.text else ""
    return activities_pb2.ExecuteGraphtonOutput(
        final_message_id=final_id,
        message_count=max(0, len(final) - len(messages)),
        usage=progress.usage,
    )


def execution_logger(logger: logging.Logger, extra: dict[str, str]) -> Log:
    """A logger that adds the execution, workflow and run IDs to every line."""
    return logging.LoggerAdapter(logger, extra)
