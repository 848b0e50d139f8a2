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
    ---
    apiVersion: polyfleet/v1
    kind: Workflow
    metadata: {name: greet}
    spec:
      description: Asks the assistant, then keeps its answer.
      document:                  # Serverless Workflow DSL 1.0, inline (or documentFile: ...)
        document: {dsl: "1.0.0", namespace: demo, name: greet, version: "1.0.0"}
        do:
          - ask:
              call: agent
              with: {agent: assistant, message: What is polyfleet?}

Every problem is raised as a :class:`ManifestError` that names the file, the dotted
field path and, where known, the line, so a user can fix a manifest without reading
this package; a workflow document's problems are named by their JSON pointer
(``spec.document/do/0/ask/with/agent``). ``docs/cli.md`` documents every field.
"""

from polyfleet.manifest.convert import agent_to_manifest, resolve_relative_paths
from polyfleet.manifest.errors import ManifestError
from polyfleet.manifest.loader import (
    KINDS,
    Resource,
    load_manifests,
    load_resources,
    parse_manifests,
    parse_resources,
)
from polyfleet.manifest.rules import PYTHON_PLACEHOLDER
from polyfleet.manifest.schema import API_VERSION, PROVIDERS
from polyfleet.manifest.workflow import parse_document_text, workflow_to_manifest

__all__ = [
    "API_VERSION",
    "KINDS",
    "PROVIDERS",
    "PYTHON_PLACEHOLDER",
    "ManifestError",
    "Resource",
    "agent_to_manifest",
    "load_manifests",
    "load_resources",
    "parse_document_text",
    "parse_manifests",
    "parse_resources",
    "resolve_relative_paths",
    "workflow_to_manifest",
]
