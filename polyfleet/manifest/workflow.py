"""Workflow manifests: the DSL document's text, its local validation, and the way back.

The document of a ``kind: Workflow`` manifest is a CNCF Serverless Workflow DSL 1.0
document, written inline under ``spec.document`` or kept in its own file named by
``spec.documentFile``. It is checked here with the DSL's own validation
(:mod:`polyfleet.dsl`, the same check the API runs on ApplyWorkflow, minus the lookup of
``call: agent`` names, which only the server can do), so a broken document fails before
anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import JsonValue

from polyfleet.manifest.schema import API_VERSION, WorkflowManifest
from polyfleet.v1 import workflow_pb2

# Long enough that expressions stay on one line in `workflows get` and `-o yaml`.
_DUMP_WIDTH = 120


class JsonYamlLoader(yaml.SafeLoader):
    """SafeLoader that keeps every scalar JSON-compatible.

    YAML 1.1 reads ``2024-01-01`` as a date, which neither JSON nor the workflow runtime
    (whose loader makes the same choice) can take: timestamps stay strings.
    """


JsonYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class DocumentProblem:
    """One reason the workflow runtime cannot run a document.

    Attributes:
        pointer: JSON pointer of the offending value, e.g. ``/do/2/callApi/with/endpoint``;
            empty for the whole document (for example a YAML syntax error).
        message: What is wrong.

    """

    pointer: str
    message: str


class _IndentedDumper(yaml.SafeDumper):
    """SafeDumper that indents list items under their key, as workflow documents are written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def dump_yaml(data: Any) -> str:
    """Render data as block-style YAML in its own key order, lists indented under their key.

    Args:
        data: Plain data (mappings, lists, scalars).

    Returns:
        YAML text ending in a newline.

    """
    return yaml.dump(
        data, Dumper=_IndentedDumper, sort_keys=False, allow_unicode=True, width=_DUMP_WIDTH
    )


def dump_document(document: Mapping[str, JsonValue]) -> str:
    """Render an inline document as the YAML text a Workflow message carries.

    Args:
        document: The parsed document, in its original key order.

    Returns:
        YAML that the runtime's loader reads back to the same data.

    """
    return dump_yaml(dict(document))


def document_problems(text: str) -> list[DocumentProblem]:
    """Parse and validate a document as the workflow runtime does.

    ``call: agent`` names are not checked: the agents live on the server, which checks them
    when the workflow is applied.

    Args:
        text: The document as YAML or JSON text.

    Returns:
        Every problem, in document order; empty when the runtime can run the document.

    """
    # Imported on first use: only workflow manifests need the DSL runtime.
    from polyfleet.dsl import InvalidDocumentError, load_document, validate_document

    try:
        document = load_document(text)
    except InvalidDocumentError as exc:
        return [DocumentProblem(p.pointer, p.message) for p in exc.problems]
    return [DocumentProblem(p.pointer, p.message) for p in validate_document(document)]


def runner_notes(text: str, resolved_functions: Mapping[str, str] | None = None) -> list[str]:
    """What a valid document needs of the runners that run it, as notes for people.

    Today: the `run: shell` / `run: script` processes ``POLYFLEET_RUNNER_ALLOW_RUN`` must
    allow (docs/dsl.md, "run"), its catalog and URL functions (``resolved_functions``, the
    JSON the server stored) included. Empty for a document that needs nothing special.
    """
    from polyfleet.dsl import InvalidDocumentError, load_document
    from polyfleet.dsl.validation import runner_requirements

    functions = {ref: json.loads(body) for ref, body in (resolved_functions or {}).items()}
    try:
        needs = runner_requirements(load_document(text), functions)
    except InvalidDocumentError:
        return []
    return [
        f"`run: {kind}` ({', '.join(pointers)}) runs only on runners whose "
        f"POLYFLEET_RUNNER_ALLOW_RUN includes {kind}"
        for kind, pointers in needs.items()
    ]


def subflows_first(workflows: list[workflow_pb2.Workflow]) -> list[workflow_pb2.Workflow]:
    """``workflows`` reordered so that one a `run: workflow` names is applied before it.

    The server refuses a `run: workflow` of a workflow it does not have yet. Otherwise the
    order is kept; workflows in a cycle keep theirs (the server refuses the cycle).
    """
    from polyfleet.dsl import InvalidDocumentError, load_document

    names = {w.name for w in workflows}
    needs: dict[str, set[str]] = {}
    for workflow in workflows:
        try:
            document: Any = load_document(workflow.document)
        except InvalidDocumentError:
            document = {}
        needs[workflow.name] = (_run_workflow_names(document) & names) - {workflow.name}
    ordered: list[workflow_pb2.Workflow] = []
    done: set[str] = set()
    pending = list(workflows)
    while pending:
        ready = [w for w in pending if needs[w.name] <= done] or pending[:1]
        for workflow in ready:
            ordered.append(workflow)
            done.add(workflow.name)
        pending = [w for w in pending if w.name not in done]
    return ordered


def _run_workflow_names(value: Any) -> set[str]:
    """The literal names of every `run: {workflow: {name}}` in a document."""
    found: set[str] = set()
    if isinstance(value, Mapping):
        run = value.get("run")
        if isinstance(run, Mapping) and isinstance(run.get("workflow"), Mapping):
            name = run["workflow"].get("name")
            if isinstance(name, str):
                found.add(name)
        for item in value.values():
            found |= _run_workflow_names(item)
    elif isinstance(value, list):
        for item in value:
            found |= _run_workflow_names(item)
    return found


def pointer_parts(pointer: str) -> list[str]:
    """Split a JSON pointer into its unescaped reference tokens.

    Args:
        pointer: For example ``/do/0/a~1b``.

    Returns:
        For example ``["do", "0", "a/b"]``; empty for the whole document.

    """
    if not pointer:
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def workflow_message(manifest: WorkflowManifest, document_text: str) -> workflow_pb2.Workflow:
    """Build the Workflow message a validated manifest describes.

    Args:
        manifest: The manifest, already checked by the schema.
        document_text: The document's text: the dumped inline document or the file's text.

    Returns:
        The message, without server-assigned fields.

    """
    return workflow_pb2.Workflow(
        name=manifest.metadata.name,
        description=manifest.spec.description,
        labels=manifest.metadata.labels,
        document=document_text,
        runner_queue=manifest.spec.runner_queue or "",
    )


def parse_document_text(text: str) -> Any:
    """Read a stored document's text (YAML or JSON) as data.

    Args:
        text: The ``document`` field of a Workflow.

    Returns:
        The parsed document.

    Raises:
        ValueError: The text is neither valid JSON nor valid YAML.

    """
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass  # YAML flow style also starts with "{"
    try:
        # JsonYamlLoader is a SafeLoader: no arbitrary objects.
        return yaml.load(text, Loader=JsonYamlLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"the document is not valid YAML: {exc}") from exc


def workflow_to_manifest(workflow: workflow_pb2.Workflow) -> dict[str, Any]:
    """Render a workflow as a manifest mapping with its document inline.

    Server-assigned fields (id, version, timestamps) are left out so the result can be
    applied again. A stored document that no longer parses is kept as its text under
    ``spec.document``, which ``apply`` then rejects with the reason.

    Args:
        workflow: The workflow message.

    Returns:
        A mapping ready for ``yaml.safe_dump``.

    """
    metadata: dict[str, Any] = {"name": workflow.name}
    if workflow.labels:
        metadata["labels"] = dict(sorted(workflow.labels.items()))
    spec: dict[str, Any] = {}
    if workflow.description:
        spec["description"] = workflow.description
    if workflow.runner_queue:
        spec["runnerQueue"] = workflow.runner_queue
    try:
        spec["document"] = parse_document_text(workflow.document)
    except ValueError:
        spec["document"] = workflow.document
    return {"apiVersion": API_VERSION, "kind": "Workflow", "metadata": metadata, "spec": spec}
