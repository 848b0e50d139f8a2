"""A tiny MCP server for the examples: canned, offline weather and arithmetic.

It speaks MCP over stdio, so an agent's runner starts it as a child process::

    mcpServers:
      - name: weather
        stdio:
          command: "{python}"            # the runner's own interpreter, which has `mcp`
          args: ["../mcp/weather_server.py"]

Every answer is deterministic and needs no network, so the demo and the tests can rely on
it. Run it by hand with ``python examples/mcp/weather_server.py`` (it waits for MCP
messages on stdin).
"""

from __future__ import annotations

from mcp.server.fastmcp import FastMCP

# Quiet by default: the runner keeps the server's stderr in its own log.
server = FastMCP(
    "weather",
    instructions="Offline demo weather forecasts and a calculator.",
    log_level="WARNING",
)

# Canned observations, keyed by lowercase city name.
FORECASTS: dict[str, str] = {
    "paris": "sunny, 21 °C, light breeze from the west",
    "london": "light rain, 14 °C, overcast",
    "tokyo": "clear skies, 26 °C, humid",
    "new york": "partly cloudy, 18 °C, gusty",
    "sydney": "showers, 17 °C, wind from the south",
}


@server.tool()
def get_weather(city: str) -> str:
    """Return the current weather in a city (offline demo data).

    Args:
        city: City name, e.g. "Paris".

    Returns:
        A one-line observation, or a note that the city is not covered.

    """
    forecast = FORECASTS.get(" ".join(city.split()).lower())
    if forecast is None:
        known = ", ".join(name.title() for name in sorted(FORECASTS))
        return f"no data for {city!r}; the offline demo knows {known}"
    return forecast


@server.tool()
def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: First addend.
        b: Second addend.

    Returns:
        The sum.

    """
    return a + b


if __name__ == "__main__":
    server.run("stdio")
