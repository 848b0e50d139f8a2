"""MCP servers as LangChain tools, through langchain-mcp-adapters.

Each server gets one session for the whole execution (the adapters' default opens a
session per tool call, which would restart a stdio server on every call). Sessions
are entered on the caller's ``AsyncExitStack`` in the activity's own task, so they
close when the execution ends, fails or is cancelled — MCP's anyio task groups must be
exited by the task that entered them.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack

from langchain_core.tools import BaseTool
from langchain_mcp_adapters.sessions import (
    Connection,
    StdioConnection,
    StreamableHttpConnection,
    create_session,
)
from langchain_mcp_adapters.tools import load_mcp_tools

from polyfleet.v1 import agent_pb2
from runner.errors import ActivityFailedError
from runner.graphton.errors import McpServerError
from runner.secrets import Secrets

logger = logging.getLogger(__name__)

# A stdio command of exactly this runs the runner's own interpreter, which has the
# `mcp` package: agent definitions need not know where Python lives on each runner.
PYTHON_PLACEHOLDER = "{python}"


def connection_for(server: agent_pb2.McpServer, secrets: Secrets) -> Connection:
    """The adapters' connection settings of ``server``, with ``${NAME}`` secrets resolved.

    Raises:
        McpServerError: The server has no transport.
        SecretError: A ``${NAME}`` reference is undeclared or has no value.

    """
    transport = server.WhichOneof("transport")
    if transport == "stdio":
        stdio = server.stdio
        purpose = f"mcp_servers['{server.name}'].stdio.env"
        connection: Connection = StdioConnection(
            transport="stdio",
            command=sys.executable if stdio.command == PYTHON_PLACEHOLDER else stdio.command,
            args=list(stdio.args),
            # Without env the SDK still passes a safe default subset (PATH, HOME, …);
            # with env it merges ours over that subset.
            env={k: secrets.expand(v, purpose=purpose) for k, v in stdio.env.items()} or None,
            cwd=stdio.cwd or None,
        )
        return connection
    if transport == "http":
        purpose = f"mcp_servers['{server.name}'].http.headers"
        return StreamableHttpConnection(
            transport="streamable_http",
            url=server.http.url,
            headers={k: secrets.expand(v, purpose=purpose) for k, v in server.http.headers.items()},
        )
    raise McpServerError(f"MCP server '{server.name}' has neither stdio nor http transport")


def _reason(err: BaseException) -> str:
    # MCP's anyio task groups wrap the real failure in an ExceptionGroup.
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    return f"{type(err).__name__}: {err}"


def _describe(server: agent_pb2.McpServer) -> str:
    if server.WhichOneof("transport") == "stdio":
        return f"MCP server '{server.name}' (stdio: {server.stdio.command})"
    return f"MCP server '{server.name}' ({server.http.url})"


async def open_mcp_tools(
    servers: Sequence[agent_pb2.McpServer],
    secrets: Secrets,
    stack: AsyncExitStack,
    *,
    connect_timeout: float,
) -> list[BaseTool]:
    """Start/connect every server, keep its session on ``stack`` and list its tools.

    Only tools named in a server's ``allowed_tools`` are offered, when it is set.

    Raises:
        McpServerError: A server could not be started, reached or listed in time.
        SecretError: A ``${NAME}`` reference is undeclared or has no value.

    """
    tools: list[BaseTool] = []
    for server in servers:
        connection = connection_for(server, secrets)
        try:
            async with asyncio.timeout(connect_timeout):
                session = await stack.enter_async_context(create_session(connection))
                await session.initialize()
                offered = await load_mcp_tools(session, server_name=server.name)
        except TimeoutError:
            raise McpServerError(
                f"{_describe(server)} did not start and list its tools within {connect_timeout:g} s"
            ) from None
        except ActivityFailedError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure to connect is the server's
            raise McpServerError(
                f"{_describe(server)} failed: {secrets.scrub(_reason(err))}"
            ) from None
        allowed = set(server.allowed_tools)
        if allowed:
            missing = allowed - {t.name for t in offered}
            if missing:
                logger.warning(
                    "%s does not offer allowed tools %s", _describe(server), sorted(missing)
                )
            offered = [t for t in offered if t.name in allowed]
        tools.extend(offered)
    return tools
