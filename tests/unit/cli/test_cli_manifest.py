"""Loading agent manifests, and the errors that name file, field and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from google.protobuf.json_format import MessageToDict

from polyfleet.manifest import ManifestError, agent_to_manifest, load_manifests, parse_manifests
from polyfleet.v1 import agent_pb2

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "agents" / "assistant.yaml"

VALID = """\
apiVersion: polyfleet/v1
kind: Agent
metadata:
  name: helper
  labels: {team: demo}
spec:
  description: Helps.
  instructions: Be brief.
  model:
    provider: scripted
    model: scripted-v1
    parameters: {temperature: 0.5, stop: ["\\n"], nested: {enabled: true}}
    scripted:
      chunkDelayMs: 10
      chunkWords: 2
      defaultReply: "echo: {message}"
      rules:
        - pattern: "(?i)hello"
          reply: Hi!
        - pattern: boom
          error: exploded
"""


def write(tmp_path: Path, text: str, name: str = "agent.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> ManifestError:
    path = write(tmp_path, text)
    with pytest.raises(ManifestError) as info:
        load_manifests(path)
    return info.value


def test_example_manifest_parses_to_the_assistant_agent() -> None:
    (agent,) = load_manifests(EXAMPLE)

    assert agent.name == "assistant"
    assert agent.model.provider == "scripted"
    assert agent.instructions
    scripted = agent.model.scripted
    assert scripted.chunk_delay_ms > 0
    assert "{message}" in scripted.default_reply
    polyfleet_rule = next(r for r in scripted.rules if re.search(r.pattern, "What is polyfleet?"))
    assert "Temporal" in polyfleet_rule.reply
    assert any(re.search(r.pattern, "What is the capital of France?") for r in scripted.rules)
    assert any(r.error for r in scripted.rules)


def test_every_field_maps_onto_the_agent_message(tmp_path: Path) -> None:
    (agent,) = load_manifests(write(tmp_path, VALID))

    expected = agent_pb2.Agent(
        name="helper",
        description="Helps.",
        instructions="Be brief.",
        labels={"team": "demo"},
        model=agent_pb2.ModelConfig(
            provider="scripted",
            model="scripted-v1",
            scripted=agent_pb2.ScriptedModel(
                rules=[
                    agent_pb2.ScriptedRule(pattern="(?i)hello", reply="Hi!"),
                    agent_pb2.ScriptedRule(pattern="boom", error="exploded"),
                ],
                default_reply="echo: {message}",
                chunk_delay_ms=10,
                chunk_words=2,
            ),
        ),
    )
    expected.model.parameters.update(
        {"temperature": 0.5, "stop": ["\n"], "nested": {"enabled": True}}
    )
    assert agent == expected


def test_manifest_round_trips_through_agent_to_manifest(tmp_path: Path) -> None:
    (agent,) = load_manifests(write(tmp_path, VALID))

    text = yaml.safe_dump(agent_to_manifest(agent), sort_keys=False)

    (again,) = parse_manifests(text)
    assert MessageToDict(again) == MessageToDict(agent)


def test_multiple_documents_give_a_list_in_order(tmp_path: Path) -> None:
    second = VALID.replace("name: helper", "name: second")
    agents = load_manifests(write(tmp_path, f"---\n{VALID}---\n{second}---\n"))

    assert [a.name for a in agents] == ["helper", "second"]


def test_missing_field_names_file_and_dotted_field(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("    provider: scripted\n", ""))

    assert str(error).startswith(f"{tmp_path / 'agent.yaml'}: spec.model.provider: field required")
    assert error.field == "spec.model.provider"
    assert error.path == str(tmp_path / "agent.yaml")


def test_wrong_type_names_the_field_and_the_value(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("chunkDelayMs: 10", "chunkDelayMs: fast"))

    assert error.field == "spec.model.scripted.chunkDelayMs"
    assert "valid integer" in error.message
    assert "'fast'" in error.message
    assert error.line == 14
    assert "agent.yaml: spec.model.scripted.chunkDelayMs:" in str(error)


def test_list_items_are_named_by_index(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace('pattern: "(?i)hello"', 'pattern: "(unclosed"'))

    assert error.field == "spec.model.scripted.rules[0].pattern"
    assert "invalid regular expression" in error.message


def test_all_problems_of_a_document_are_reported(tmp_path: Path) -> None:
    text = VALID.replace("chunkWords: 2", "chunkWords: two").replace(
        "description: Helps.", "description: Helps.\n  colour: blue"
    )
    error = error_for(tmp_path, text)

    fields = {error.field, *(e.field for e in error.additional)}
    assert fields == {"spec.colour", "spec.model.scripted.chunkWords"}
    assert len(str(error).splitlines()) == 2


def test_unknown_field_is_rejected(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("  model:\n", "  modle: {}\n  model:\n"))

    assert error.field == "spec.modle"
    assert error.message == "unknown field"


def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    error = error_for(tmp_path, "apiVersion: polyfleet/v1\nkind: Agent\nmetadata:\n  name: [x\n")

    assert error.field is None
    assert error.line is not None
    assert f"line {error.line}" in str(error)
    assert str(error).startswith(str(tmp_path / "agent.yaml"))
    assert "invalid YAML" in str(error)


def test_yaml_syntax_error_line_is_the_offending_line(tmp_path: Path) -> None:
    error = error_for(tmp_path, "apiVersion: polyfleet/v1\nkind: Agent\nmetadata: a: b\n")

    assert error.line == 3


def test_unknown_kind_names_kind(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("kind: Agent", "kind: Gadget"))

    assert error.field == "kind"
    assert "Gadget" in str(error)
    assert "agent.yaml: kind:" in str(error)


def test_agent_only_loader_rejects_a_workflow_manifest(tmp_path: Path) -> None:
    # load_manifests is the loader for agents; load_resources takes workflows too.
    error = error_for(tmp_path, VALID.replace("kind: Agent", "kind: Workflow"))

    assert error.field == "kind"
    assert "a Workflow manifest is not accepted here (use 'Agent')" in str(error)


def test_wrong_api_version_is_rejected(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("polyfleet/v1", "polyfleet/v2"))

    assert error.field == "apiVersion"


def test_scripted_provider_requires_scripted_config(tmp_path: Path) -> None:
    text = VALID.split("    scripted:\n")[0]
    error = error_for(tmp_path, text)

    assert error.field == "spec.model.scripted"
    assert "required" in error.message


def test_scripted_config_needs_the_scripted_provider(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("provider: scripted", "provider: openai"))

    assert error.field == "spec.model.scripted"


@pytest.mark.parametrize("name", ["Helper", "1agent", "a_b", "x" * 64, ""])
def test_invalid_names_are_rejected(tmp_path: Path, name: str) -> None:
    error = error_for(tmp_path, VALID.replace("name: helper", f"name: '{name}'"))

    assert error.field == "metadata.name"


def test_rule_needs_exactly_one_of_reply_and_error(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("          reply: Hi!\n", ""))

    assert error.field == "spec.model.scripted.rules[0]"


def test_non_json_parameters_are_rejected(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("temperature: 0.5", "when: !!set {a: null}"))

    assert error.field == "spec.model.parameters.when"


def test_dates_stay_strings(tmp_path: Path) -> None:
    # YAML 1.1 would make a date of it, which JSON (and a protobuf Struct) cannot hold.
    (agent,) = load_manifests(write(tmp_path, VALID.replace("temperature: 0.5", "day: 2024-01-01")))

    assert agent.model.parameters["day"] == "2024-01-01"


def test_yaml_boolean_keys_get_a_hint(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("team: demo", "on: demo"))

    assert error.field == "metadata.labels.True"
    assert "quote the key" in error.message


def test_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    error = error_for(tmp_path, "- just\n- a list\n")

    assert "mapping" in str(error)


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    error = error_for(tmp_path, "# nothing here\n")

    assert "no manifests" in str(error)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="file not found"):
        load_manifests(tmp_path / "absent.yaml")


def test_unknown_field_with_a_nested_value_is_on_its_key_line(tmp_path: Path) -> None:
    # The misspelled key is on line 9; its mapping value starts on line 10.
    error = error_for(tmp_path, VALID.replace("  model:\n", "  modle:\n", 1))

    assert "spec.modle" in {error.field, *(e.field for e in error.additional)}
    unknown = next(e for e in (error, *error.additional) if e.field == "spec.modle")
    assert unknown.message == "unknown field"
    assert unknown.line == 9


def test_missing_field_under_a_list_item_is_on_the_item_line(tmp_path: Path) -> None:
    error = error_for(tmp_path, VALID.replace("          reply: Hi!\n", ""))

    assert error.field == "spec.model.scripted.rules[0]"
    assert error.line == 18
