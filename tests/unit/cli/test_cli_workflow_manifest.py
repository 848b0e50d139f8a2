"""Workflow manifests: inline documents, document files, and problems named by JSON pointer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polyfleet.dsl import load_document, validate_document
from polyfleet.manifest import (
    ManifestError,
    load_manifests,
    load_resources,
    parse_resources,
    workflow_to_manifest,
)
from polyfleet.manifest.workflow import dump_yaml, runner_notes
from polyfleet.v1 import agent_pb2, workflow_pb2
from tests.unit.cli.support import EXAMPLE_MANIFEST, EXAMPLE_WORKFLOWS

VALID = """\
apiVersion: polyfleet/v1
kind: Workflow
metadata:
  name: order-flow
  labels: {team: demo}
spec:
  description: Takes an order.
  document:
    document: {dsl: "1.0.0", namespace: demo, name: order-flow, version: "1.0.0"}
    do:
      - prepare:
          set:
            customer: ${ .customer }
            day: 2024-01-01
      - ask:
          call: agent
          with:
            agent: assistant
            message: What is polyfleet?
"""

DOCUMENT_FILE = """\
document: {dsl: "1.0.0", namespace: demo, name: from-file, version: "1.0.0"}
# comments survive: the file is sent as written
do:
  - a:
      set: {x: 1}
"""

BY_FILE = """\
apiVersion: polyfleet/v1
kind: Workflow
metadata: {name: from-file}
spec:
  documentFile: FILE
"""


def write(tmp_path: Path, text: str, name: str = "workflow.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_one(path: Path) -> workflow_pb2.Workflow:
    (workflow,) = load_resources(path)
    assert isinstance(workflow, workflow_pb2.Workflow)
    return workflow


def error_for(tmp_path: Path, text: str) -> ManifestError:
    path = write(tmp_path, text)
    with pytest.raises(ManifestError) as info:
        load_resources(path)
    return info.value


# --- valid manifests ------------------------------------------------------------------------


def test_every_example_workflow_loads_and_its_document_is_valid() -> None:
    files = sorted(EXAMPLE_WORKFLOWS.glob("*.yaml"))
    agents = {agent.name for agent in load_manifests(EXAMPLE_MANIFEST)}

    assert len(files) >= 2
    for file in files:
        for workflow in load_resources(file):
            assert isinstance(workflow, workflow_pb2.Workflow), file
            # What the API checks on ApplyWorkflow, including the `call: agent` names.
            document = load_document(workflow.document)
            assert validate_document(document, known_agents=agents) == [], file
            assert document["document"]["name"] == workflow.name


def test_examples_reach_no_host_the_input_does_not_name() -> None:
    # The examples run offline: an HTTP call is skipped unless the input names the server
    # (`polyfleet demo` passes its own on 127.0.0.1), and no endpoint is a fixed host.
    http_calls = 0
    for file in EXAMPLE_WORKFLOWS.glob("*.yaml"):
        for workflow in load_resources(file):
            assert isinstance(workflow, workflow_pb2.Workflow)
            for task in _http_tasks(load_document(workflow.document)):
                http_calls += 1
                assert "$workflow.input" in task.get("if", ""), file
                endpoint = task["with"]["endpoint"]
                assert isinstance(endpoint, str), file
                assert endpoint.startswith("${") and "$workflow.input" in endpoint, file
    assert http_calls >= 1


def _http_tasks(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("call") == "http":
            yield node
        for value in node.values():
            yield from _http_tasks(value)
    elif isinstance(node, list):
        for value in node:
            yield from _http_tasks(value)


def test_inline_document_becomes_yaml_text_with_the_same_data(tmp_path: Path) -> None:
    workflow = load_one(write(tmp_path, VALID))

    assert (workflow.name, workflow.description) == ("order-flow", "Takes an order.")
    assert dict(workflow.labels) == {"team": "demo"}
    document = load_document(workflow.document)
    assert list(document) == ["document", "do"]
    assert document["do"][0]["prepare"]["set"] == {
        "customer": "${ .customer }",
        # YAML 1.1 would make a date of it; JSON data keeps it a string.
        "day": "2024-01-01",
    }
    assert document["document"]["version"] == "1.0.0"
    assert not workflow.id and not workflow.version


def test_document_file_is_read_relative_to_the_manifest_and_sent_as_written(
    tmp_path: Path,
) -> None:
    write(tmp_path, DOCUMENT_FILE, "flows/from-file.yaml")
    manifest = write(tmp_path, BY_FILE.replace("FILE", "flows/from-file.yaml"), "manifests/x.yaml")
    manifest.rename(tmp_path / "x.yaml")

    workflow = load_one(tmp_path / "x.yaml")

    assert workflow.document == DOCUMENT_FILE


def test_document_file_may_be_json_and_absolute(tmp_path: Path) -> None:
    document = load_document(DOCUMENT_FILE)
    file = write(tmp_path, json.dumps(document), "flow.json")

    workflow = load_one(write(tmp_path, BY_FILE.replace("FILE", str(file))))

    assert load_document(workflow.document) == document


def test_stdin_reads_document_files_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, DOCUMENT_FILE, "flow.yaml")
    monkeypatch.chdir(tmp_path)

    (workflow,) = parse_resources(BY_FILE.replace("FILE", "flow.yaml"), "<stdin>")

    assert isinstance(workflow, workflow_pb2.Workflow)
    assert workflow.document == DOCUMENT_FILE


def test_a_file_holds_agents_and_workflows_in_order(tmp_path: Path) -> None:
    agent = EXAMPLE_MANIFEST.read_text(encoding="utf-8")
    path = write(tmp_path, f"{VALID}---\n{agent}")

    workflow, assistant = load_resources(path)

    assert isinstance(workflow, workflow_pb2.Workflow)
    assert isinstance(assistant, agent_pb2.Agent)
    # Relative MCP paths of the agent are still resolved against the file's directory.
    assert assistant.mcp_servers[0].stdio.args[0].startswith(str(tmp_path.parent))


def test_workflow_to_manifest_round_trips(tmp_path: Path) -> None:
    workflow = load_one(write(tmp_path, VALID))
    stored = workflow_pb2.Workflow()
    stored.CopyFrom(workflow)
    stored.id, stored.version = "wf-1", 3

    manifest = workflow_to_manifest(stored)
    (again,) = parse_resources(dump_yaml(manifest))

    assert manifest["spec"]["document"]["do"][1]["ask"]["call"] == "agent"
    assert "id" not in manifest["metadata"] and "version" not in manifest["metadata"]
    assert again == workflow


# --- schema problems ------------------------------------------------------------------------


def test_both_document_and_document_file_is_an_error(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("spec:\n", "spec:\n  documentFile: x.yaml\n"))

    assert error.field == "spec"
    assert error.message == "set exactly one of document and documentFile"


def test_neither_document_nor_document_file_is_an_error(tmp_path: Path) -> None:
    text = VALID.split("  document:\n")[0]

    error = error_for(tmp_path, text)

    assert error.field == "spec"
    assert "set exactly one of document and documentFile" in str(error)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (("  name: order-flow\n", ""), "metadata.name", "field required"),
        (("  description:", "  summary:"), "spec.summary", "unknown field"),
        (("name: order-flow\n", "name: Order_Flow\n"), "metadata.name", "invalid name"),
        (("  description: Takes an order.", "  description: [a]"), "spec.description", "string"),
        (("  document:\n    document:", "  document: [1]\n  x:\n    document:"), "spec", ""),
    ],
    ids=["missing name", "extra field", "bad name", "wrong type", "document not a mapping"],
)
def test_schema_problems_name_the_field(
    tmp_path: Path, change: tuple[str, str], field: str, message: str
) -> None:
    error = error_for(tmp_path, VALID.replace(*change))

    assert error.field is not None and error.field.startswith(field)
    assert message in error.message


def test_unknown_kind_lists_both_kinds(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("kind: Workflow", "kind: Flow"))

    assert error.field == "kind"
    assert "supported: 'Agent', 'Workflow'" in error.message


# --- document problems ----------------------------------------------------------------------


def test_inline_document_problems_are_named_by_pointer_and_line(tmp_path: Path) -> None:
    text = VALID.replace("          call: agent\n", "          call: asyncapi\n")

    error = error_for(tmp_path, text)

    assert error.field == "spec.document/do/1/ask/call"
    assert "call: asyncapi is not supported" in error.message
    assert error.line == 16
    assert str(error).startswith(f"{tmp_path / 'workflow.yaml'}: spec.document/do/1/ask/call: ")


def test_every_document_problem_is_listed(tmp_path: Path) -> None:
    text = VALID.replace("          set:\n", "          sett:\n").replace(
        "agent: assistant", "agent: assistant\n            extra: 1"
    )

    error = error_for(tmp_path, text)

    assert [(e.field, e.line) for e in (error, *error.additional)] == [
        # A field is on its key's line, not on the line where its value starts.
        ("spec.document/do/0/prepare", 11),
        ("spec.document/do/1/ask/with/extra", 19),
    ]
    assert "unknown task type" in error.message
    assert error.additional[0].message == "unknown property 'extra'"
    assert len(str(error).splitlines()) == 2


def test_a_bad_expression_is_named(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("${ .customer }", "${ .customer | }"))

    assert error.field == "spec.document/do/0/prepare/set/customer"
    assert "invalid jq expression" in error.message
    assert error.line == 13


def test_local_validation_leaves_unknown_agents_to_the_server(tmp_path: Path) -> None:
    # Agents live on the server; ApplyWorkflow checks the name (see test_cli_workflows).
    workflow = load_one(write(tmp_path, VALID.replace("agent: assistant", "agent: nobody")))

    assert "agent: nobody" in workflow.document


def test_document_file_problems_name_that_file_pointer_and_line(tmp_path: Path) -> None:
    file = write(tmp_path, DOCUMENT_FILE.replace("set: {x: 1}", "wait: soon"), "flow.yaml")
    manifest = write(tmp_path, BY_FILE.replace("FILE", "flow.yaml"))

    with pytest.raises(ManifestError) as info:
        load_resources(manifest)

    error = info.value
    assert error.path == str(file)
    assert error.field == "/do/0/a/wait"
    assert error.line == 5
    assert str(error).startswith(f"{file}: /do/0/a/wait: ")


def test_a_document_file_that_is_not_yaml_is_reported(tmp_path: Path) -> None:
    file = write(tmp_path, "do: [\n", "flow.yaml")

    error = error_for(tmp_path, BY_FILE.replace("FILE", "flow.yaml"))

    assert error.path == str(file)
    assert error.field is None
    assert "invalid YAML" in error.message


def test_a_missing_document_file_names_the_manifest_field(tmp_path: Path) -> None:
    error = error_for(tmp_path, BY_FILE.replace("FILE", "nowhere.yaml"))

    assert error.field == "spec.documentFile"
    assert error.message == f"file not found: {tmp_path / 'nowhere.yaml'}"
    assert error.line == 5


def test_catalog_and_url_functions_pass_the_local_check_without_fetching() -> None:
    # The CLI cannot fetch: the server resolves (and may refuse) them when applying.
    text = VALID.split("    do:\n")[0] + (
        "    do:\n"
        "      - log: {call: 'log:1.0.0@default', with: {message: hi}}\n"
        "      - url: {call: 'https://functions.example/shout/1.0.0'}\n"
    )
    (workflow,) = parse_resources(text, "order-flow.yaml")
    assert isinstance(workflow, workflow_pb2.Workflow)
    script = json.dumps({"run": {"script": {"language": "python", "code": "print(1)"}}})
    resolved = {"log:1.0.0@default": script}
    assert runner_notes(workflow.document, resolved) == [
        "`run: script` (/do/0/log/call) runs only on runners whose "
        "POLYFLEET_RUNNER_ALLOW_RUN includes script"
    ]
    assert runner_notes(workflow.document) == []
