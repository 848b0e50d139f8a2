"""Secret resolution: declared names only, environment before file, scrubbing."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyfleet.redaction import REDACTED
from runner.errors import SecretError
from runner.secrets import Secrets, read_secrets_file


def test_only_declared_secrets_resolve_and_the_environment_wins(tmp_path: Path) -> None:
    secrets = Secrets(
        ["API_KEY", "TOKEN"],
        environ={"API_KEY": "from-env", "HOME_PASSWORD": "hunter22"},
        file_values={"API_KEY": "from-file", "TOKEN": "file-token", "OTHER": "x"},
    )
    assert secrets.get("API_KEY", purpose="model.api_key_secret") == "from-env"
    assert secrets.get("TOKEN", purpose="t") == "file-token"
    with pytest.raises(SecretError, match="does not declare") as undeclared:
        secrets.get("HOME_PASSWORD", purpose="mcp env")
    assert "hunter22" not in undeclared.value.message
    assert undeclared.value.error_type == "SecretNotFound"


def test_a_declared_secret_without_a_value_names_where_to_set_it() -> None:
    with pytest.raises(SecretError, match="POLYFLEET_RUNNER_SECRETS_FILE"):
        Secrets(["MISSING"], environ={}).get("MISSING", purpose="model.api_key_secret")


def test_dotenv_file_with_quotes_comments_and_export(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("# comment\nexport A=\"quoted value\"\nB=plain\nC='single'\nEMPTY\n")
    assert read_secrets_file(path) == {"A": "quoted value", "B": "plain", "C": "single"}
    loaded = Secrets.load(["A", "B"], use_environment=False, secrets_file=path)
    assert loaded.get("A", purpose="p") == "quoted value"


def test_load_uses_the_process_environment_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAPHTON_TEST_SECRET", "env-value")
    assert (
        Secrets.load(["GRAPHTON_TEST_SECRET"], use_environment=True, secrets_file=None).get(
            "GRAPHTON_TEST_SECRET", purpose="p"
        )
        == "env-value"
    )
    with pytest.raises(SecretError):
        Secrets.load(["GRAPHTON_TEST_SECRET"], use_environment=False, secrets_file=None).get(
            "GRAPHTON_TEST_SECRET", purpose="p"
        )


def test_unreadable_secrets_file_is_a_secret_error(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="cannot read"):
        Secrets.load(["A"], use_environment=False, secrets_file=tmp_path / "missing.env")


def test_expand_replaces_references_and_rejects_undeclared_ones() -> None:
    secrets = Secrets(["TOKEN"], environ={"TOKEN": "abc123"})
    assert secrets.expand("Bearer ${TOKEN}", purpose="h") == "Bearer abc123"
    assert secrets.expand("no refs $TOKEN", purpose="h") == "no refs $TOKEN"
    with pytest.raises(SecretError, match="'PATH'"):
        secrets.expand("${PATH}", purpose="mcp_servers['x'].stdio.env")


def test_scrub_hides_every_value_longest_first_but_not_tiny_ones() -> None:
    secrets = Secrets(
        ["LONG", "INNER", "TINY"],
        environ={"LONG": "sk-abcdef-123456", "INNER": "abcdef", "TINY": "ab"},
    )
    text = "key sk-abcdef-123456 and abcdef and ab"
    assert secrets.scrub(text) == f"key {REDACTED} and {REDACTED} and ab"
