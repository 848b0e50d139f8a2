"""API tokens and the token file: making, hashing, parsing with errors that name the place."""

from __future__ import annotations

import hashlib
import re

import pytest

from polyfleet.roles import Role
from polyfleet.tokens import (
    TokenEntry,
    TokenFileError,
    append_entry,
    dump_token_file,
    hash_token,
    make_entry,
    new_token,
    parse_token_file,
)

HEX = "ab" * 32
OTHER = "cd" * 32


def test_new_tokens_are_random_prefixed_and_url_safe() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert re.fullmatch(r"pft_[A-Za-z0-9_-]{43}", token)


def test_hash_is_sha256_with_its_prefix() -> None:
    assert hash_token("abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()


def test_file_round_trips() -> None:
    token = new_token()
    entries = [
        make_entry("ci-bot", Role.OPERATOR, token),
        TokenEntry("ops: on-call #1", Role.ADMIN, OTHER),
    ]
    text = dump_token_file(entries)
    assert text.startswith("# polyfleet API tokens: only hashes")
    assert token not in text
    assert parse_token_file(text, "t.yaml") == entries
    assert entries[0].sha256 == hash_token(token).removeprefix("sha256:")


def test_the_documented_format_with_or_without_prefix() -> None:
    text = f"""\
# polyfleet API tokens: only hashes, never the tokens themselves
tokens:
  - subject: ci-bot
    role: operator
    sha256: {HEX}   # a comment
  - subject: admin-1
    role: ADMIN
    sha256: "sha256:{OTHER.upper()}"
"""
    assert parse_token_file(text, "t.yaml") == [
        TokenEntry("ci-bot", Role.OPERATOR, HEX),
        TokenEntry("admin-1", Role.ADMIN, OTHER),
    ]


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "tokens:\n", "tokens: []\n"])
def test_an_empty_file_has_no_entries(text: str) -> None:
    assert parse_token_file(text, "t.yaml") == []


def _error(text: str) -> str:
    with pytest.raises(TokenFileError) as caught:
        parse_token_file(text, "/etc/polyfleet/tokens.yaml")
    message = str(caught.value)
    assert message.startswith("/etc/polyfleet/tokens.yaml")
    return message


def test_unknown_role_names_entry_line_and_the_roles() -> None:
    message = _error(
        f"tokens:\n  - subject: a\n    role: operator\n    sha256: {HEX}\n"
        f"  - subject: b\n    role: boss\n    sha256: {OTHER}\n"
    )
    assert "tokens[1] (line 5)" in message
    assert "role (line 6)" in message
    assert "'boss'" in message and "reader, operator, admin, runner" in message


def test_duplicate_hash_names_both_entries() -> None:
    message = _error(
        f"tokens:\n  - subject: a\n    role: reader\n    sha256: {HEX}\n"
        f"  - subject: b\n    role: admin\n    sha256: sha256:{HEX}\n"
    )
    assert "tokens[1] (line 5)" in message
    assert "duplicate hash" in message and "tokens[0] (line 2)" in message


def test_bad_hex_never_echoes_the_value() -> None:
    # A token pasted where its hash belongs must not end up in logs.
    token = new_token()
    message = _error(f"tokens:\n  - subject: a\n    role: reader\n    sha256: {token}\n")
    assert "tokens[0] (line 2): sha256 (line 4): expected 64 hex digits" in message
    assert token not in message


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (f"role: reader\n    sha256: {HEX}", "tokens[0] (line 2): subject: missing"),
        (f"subject: ''\n    role: reader\n    sha256: {HEX}", "subject (line 2): must not be"),
        ("subject: a\n    role: reader", "sha256: missing"),
        (f"subject: a\n    sha256: {HEX}", "role: missing"),
        (f"subject: a\n    role: reader\n    sha256: {HEX}\n    note: x", "unknown field 'note'"),
        (f"subject: [a]\n    role: reader\n    sha256: {HEX}", "subject (line 2): expected a"),
    ],
)
def test_entry_problems_name_entry_and_field(entry: str, expected: str) -> None:
    assert expected in _error(f"tokens:\n  - {entry}\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tokens: [\n", "not valid YAML"),
        ("- a\n", "expected a mapping with a `tokens` list"),
        ("token:\n  - subject: a\n", "(line 1): unknown key 'token'"),
        ("tokens: yes\n", "tokens: expected a list"),
        ("tokens:\n  - just-a-string\n", "tokens[0] (line 2): expected a mapping"),
    ],
)
def test_shape_problems(text: str, expected: str) -> None:
    assert expected in _error(text)


def test_append_keeps_comments_and_checks_duplicates() -> None:
    text = f"# ours\ntokens:\n    - subject: a  # first\n      role: reader\n      sha256: {HEX}\n"
    entry = TokenEntry("b", Role.ADMIN, OTHER)
    appended = append_entry(text, entry, "t.yaml")
    assert appended.startswith(text)
    assert parse_token_file(appended, "t.yaml")[-1] == entry
    with pytest.raises(TokenFileError, match="already in the file"):
        append_entry(appended, entry, "t.yaml")
    assert parse_token_file(append_entry("", entry, "t.yaml"), "t.yaml") == [entry]


def test_append_refuses_a_file_whose_list_does_not_end_it() -> None:
    text = f"tokens: [{{subject: a, role: reader, sha256: {HEX}}}]\n"
    with pytest.raises(TokenFileError, match="add it by hand"):
        append_entry(text, TokenEntry("b", Role.ADMIN, OTHER), "t.yaml")


def test_make_entry_refuses_a_bad_subject() -> None:
    with pytest.raises(ValueError, match="control characters"):
        make_entry("a\nb", Role.READER, new_token())
