"""A small MCP server for tests, run over stdio as ``python mcp_server.py``."""

from __future__ import annotations

import asyncio
import os

from mcp.server.fastmcp import FastMCP

server = FastMCP("test-tools")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def weather(city: str) -> str:
    """Today's weather in a city."""
    return f"Sunny and 21 degrees in {city}"


@server.tool()
async def hang(label: str) -> str:
    """Never return: a tool call still running when its execution ends."""
    await asyncio.Event().wait()
    return label


@server.tool()
def whoami() -> str:
    """Who the server runs as: reads TOOL_TOKEN from its environment."""
    return f"token={os.environ.get('TOOL_TOKEN', '')}"


if __name__ == "__main__":
    server.run()  # stdio
