"""``polyfleet tokens create`` and ``polyfleet tokens hash``."""

from __future__ import annotations

import io
import re
import stat
from pathlib import Path

import pytest

from polyfleet.roles import Role
from polyfleet.tokens import TokenEntry, hash_token, parse_token_file
from tests.unit.cli.support import Run


def _token(out: str) -> str:
    token = out.strip()
    assert out == token + "\n", "stdout holds the token alone"
    assert re.fullmatch(r"pft_[A-Za-z0-9_-]{43}", token)
    return token


def test_create_prints_the_token_and_the_entry_to_paste(run_cli: Run) -> None:
    result = run_cli("tokens", "create", "--subject", "ci-bot", "--role", "operator")
    assert result.code == 0, result.err
    token = _token(result.out)
    assert token not in result.err
    pasted = parse_token_file("tokens:\n" + result.err.split("\n", 1)[1], "stderr")
    assert pasted == [TokenEntry("ci-bot", Role.OPERATOR, hash_token(token)[7:])]


def test_create_with_file_creates_it_private_then_appends(run_cli: Run, tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    first = run_cli(
        "tokens", "create", "--subject", "ci-bot", "--role", "reader", "--file", str(path)
    )
    assert first.code == 0, first.err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with path.open("a") as out:
        out.write("  # a comment the next append keeps\n")
    second = run_cli(
        "tokens", "create", "--subject", "admin", "--role", "ADMIN", "--file", str(path)
    )
    assert second.code == 0, second.err
    tokens = [_token(first.out), _token(second.out)]
    text = path.read_text()
    assert "a comment the next append keeps" in text
    assert not any(token in text for token in tokens)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert parse_token_file(text, str(path)) == [
        TokenEntry("ci-bot", Role.READER, hash_token(tokens[0])[7:]),
        TokenEntry("admin", Role.ADMIN, hash_token(tokens[1])[7:]),
    ]


def test_create_refuses_a_broken_file_and_prints_no_token(run_cli: Run, tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens:\n  - subject: a\n")
    result = run_cli("tokens", "create", "--subject", "b", "--role", "reader", "--file", str(path))
    assert result.code == 2
    assert result.out == ""
    assert f"error: {path}: tokens[0] (line 2): role: missing" in result.err
    assert path.read_text() == "tokens:\n  - subject: a\n"


def test_create_refuses_an_unknown_role(run_cli: Run) -> None:
    with pytest.raises(SystemExit) as caught:
        run_cli("tokens", "create", "--subject", "a", "--role", "root")
    assert caught.value.code == 2


def test_create_refuses_an_empty_subject(run_cli: Run) -> None:
    result = run_cli("tokens", "create", "--subject", " ", "--role", "reader")
    assert result.code == 2
    assert "--subject" in result.err and result.out == ""


def test_hash_reads_the_token_from_stdin(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("pft_abc\n"))
    result = run_cli("tokens", "hash")
    assert result.code == 0
    assert result.out == hash_token("pft_abc") + "\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    result = run_cli("tokens", "hash")
    assert result.code == 2 and "no token on stdin" in result.err
