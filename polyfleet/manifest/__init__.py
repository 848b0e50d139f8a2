"""Load Kubernetes-style YAML manifests into polyfleet API messages.

A manifest file holds one or more YAML documents separated by ``---``::

    apiVersion: polyfleet/v1
    kind: Agent
    metadata:
      name: assistant
      labels: {team: demo}
    spec:
      description: A friendly assistant
      instructions: You are a concise, friendly assistant.
      secrets: [WEATHER_TOKEN]
      model:
        provider: scripted
        scripted:
          rules:
            - pattern: "(?i)weather"
              toolCall: {name: get_weather, arguments: {city: Paris}}
              reply: "The weather in Paris: {tool_result}"
      mcpServers:
        - name: weather
          stdio:
            command: "{python}"
            args: ["../mcp/weather_server.py"]
            env: {WEATHER_TOKEN: "${WEATHER_TOKEN}"}
      limits: {maxSteps: 10, timeout: 2m}

Every problem is raised as a :class:`ManifestError` that names the file, the dotted
field path and, where known, the line, so a user can fix a manifest without reading
this package. ``docs/cli.md`` documents every field.
"""

from polyfleet.manifest.convert import agent_to_manifest, resolve_relative_paths
from polyfleet.manifest.errors import ManifestError
from polyfleet.manifest.loader import load_manifests, parse_manifests
from polyfleet.manifest.rules import PYTHON_PLACEHOLDER
from polyfleet.manifest.schema import API_VERSION, PROVIDERS, parse_duration

__all__ = [
    "API_VERSION",
    "PROVIDERS",
    "PYTHON_PLACEHOLDER",
    "ManifestError",
    "agent_to_manifest",
    "load_manifests",
    "parse_duration",
    "parse_manifests",
    "resolve_relative_paths",
]
