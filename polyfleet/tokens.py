"""API bearer tokens: making them, hashing them, and the file of their hashes.

The orchestrator never stores a token, only its hash, in a YAML file
(``POLYFLEET_AUTH_TOKENS_FILE``)::

    # polyfleet API tokens: only hashes, never the tokens themselves
    tokens:
      - subject: ci-bot
        role: operator
        sha256: 3b0c...   # 64 hex digits, with or without a "sha256:" prefix

``polyfleet tokens create`` makes a token and its entry; ``polyfleet tokens hash`` hashes a
token made elsewhere. Errors name the file, the entry and the field, and never quote a hash
field's value: it could be a token pasted in the wrong place.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import yaml

from polyfleet.quoting import quote
from polyfleet.roles import Role, parse_role

#: Every token polyfleet makes starts with it, so secret scanners can find leaked ones.
TOKEN_PREFIX = "pft_"
#: How hashes are written by :func:`hash_token`; the file accepts the hex alone too.
HASH_PREFIX = "sha256:"
HEADER = "# polyfleet API tokens: only hashes, never the tokens themselves\n"
_HEX = re.compile(r"[0-9a-f]{64}")
_FIELDS = ("subject", "role", "sha256")
_MAX_SUBJECT = 200
_MAX_ROLE = 40


class TokenFileError(ValueError):
    """The token file is malformed; the message names the file, the entry and the field."""


@dataclass(frozen=True)
class TokenEntry:
    """One accepted token, known by its hash.

    Attributes:
        subject: Who uses the token (recorded as the caller of each call).
        role: What the token may do.
        sha256: The token's SHA-256, 64 lowercase hex digits (no prefix).

    """

    subject: str
    role: Role
    sha256: str


def new_token() -> str:
    """A new random API token: ``pft_`` and 43 URL-safe characters (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The hash of ``token`` as the token file holds it: ``sha256:<64 hex digits>``.

    A plain, unsalted SHA-256 is the right hash here, unlike for passwords: the tokens are
    256-bit random values, so there is nothing to guess and no dictionary to precompute;
    a slow or salted hash would add only cost per call, and an unsalted one lets the
    server find a token's entry by its hash in one dict lookup.
    """
    return HASH_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def _check_subject(subject: str) -> str | None:
    """What is wrong with ``subject``, or None."""
    if not subject.strip():
        return "must not be empty"
    if len(subject) > _MAX_SUBJECT:
        return f"longer than {_MAX_SUBJECT} characters"
    if any(not c.isprintable() for c in subject):
        return "must not contain control characters or line breaks"
    return None


def make_entry(subject: str, role: Role, token: str) -> TokenEntry:
    """The file entry of ``token``.

    Raises:
        ValueError: ``subject`` is empty, too long or has control characters.

    """
    problem = _check_subject(subject)
    if problem:
        raise ValueError(f"subject {quote(subject)}: {problem}")
    return TokenEntry(subject, role, hash_token(token).removeprefix(HASH_PREFIX))


def parse_token_file(text: str, source: str) -> list[TokenEntry]:
    """The entries of a token file.

    An empty file, or ``tokens: []``, has no entries (no token is accepted).

    Args:
        text: The file's content.
        source: The file's name, for error messages.

    Raises:
        TokenFileError: Not YAML, not the format above, an unknown role, a hash that is not
            64 hex digits, the same hash twice, or an empty subject; the message names the
            file, the entry (index and line) and the field.

    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        # The parser's message may quote the text; a token file holds no secret, but keep
        # the message short and ours.
        raise TokenFileError(f"{source}{where}: not valid YAML") from None
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode):
        raise TokenFileError(f"{source}: expected a mapping with a `tokens` list")
    items: list[yaml.Node] | None = None
    for key, value in root.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        if name != "tokens":
            raise TokenFileError(
                f"{source} (line {key.start_mark.line + 1}): unknown key {quote(name)}: "
                "expected only `tokens`"
            )
        if isinstance(value, yaml.ScalarNode) and value.tag.endswith(":null"):
            items = []
        elif isinstance(value, yaml.SequenceNode):
            items = list(value.value)
        else:
            raise TokenFileError(
                f"{source} (line {value.start_mark.line + 1}): tokens: expected a list"
            )
    entries: list[TokenEntry] = []
    seen: dict[str, tuple[int, int]] = {}
    for index, node in enumerate(items or []):
        entry = _parse_entry(node, f"{source}: tokens[{index}] (line {node.start_mark.line + 1})")
        if entry.sha256 in seen:
            other, line = seen[entry.sha256]
            raise TokenFileError(
                f"{source}: tokens[{index}] (line {node.start_mark.line + 1}): sha256: "
                f"duplicate hash, already in tokens[{other}] (line {line})"
            )
        seen[entry.sha256] = (index, node.start_mark.line + 1)
        entries.append(entry)
    return entries


def _parse_entry(node: yaml.Node, where: str) -> TokenEntry:
    if not isinstance(node, yaml.MappingNode):
        raise TokenFileError(f"{where}: expected a mapping with subject, role and sha256")
    fields: dict[str, tuple[str, int]] = {}
    for key, value in node.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        line = key.start_mark.line + 1
        if name not in _FIELDS:
            raise TokenFileError(
                f"{where}: unknown field {quote(name)} (line {line}): expected {', '.join(_FIELDS)}"
            )
        if not isinstance(value, yaml.ScalarNode) or value.tag.endswith(":null"):
            raise TokenFileError(f"{where}: {name} (line {line}): expected a string")
        fields[str(name)] = (str(value.value), line)
    for name in _FIELDS:
        if name not in fields:
            raise TokenFileError(f"{where}: {name}: missing")
    subject, line = fields["subject"]
    problem = _check_subject(subject)
    if problem:
        raise TokenFileError(f"{where}: subject (line {line}): {problem}")
    text, line = fields["role"]
    try:
        role = parse_role(text if len(text) <= _MAX_ROLE else quote(text, _MAX_ROLE))
    except ValueError as exc:
        raise TokenFileError(f"{where}: role (line {line}): {exc}") from None
    digest, line = fields["sha256"]
    digest = digest.strip().lower().removeprefix(HASH_PREFIX)
    if not _HEX.fullmatch(digest):
        # Never quoted: it may be a token pasted where its hash belongs.
        raise TokenFileError(
            f"{where}: sha256 (line {line}): expected 64 hex digits, a token's hash from "
            "`polyfleet tokens hash` (never the token itself)"
        )
    return TokenEntry(subject, role, digest)


def _entry_lines(entry: TokenEntry, indent: int) -> str:
    pad = " " * indent
    subject = yaml.safe_dump(entry.subject, default_style=None, width=1000).splitlines()[0]
    return (
        f"{pad}- subject: {subject}\n"
        f"{pad}  role: {entry.role.value}\n"
        f"{pad}  sha256: {entry.sha256}\n"
    )


def dump_token_file(entries: Iterable[TokenEntry]) -> str:
    """A token file holding ``entries``, in the format :func:`parse_token_file` reads."""
    body = "".join(_entry_lines(entry, 2) for entry in entries)
    return HEADER + ("tokens:\n" + body if body else "tokens: []\n")


def append_entry(text: str, entry: TokenEntry, source: str) -> str:
    """``text`` with ``entry`` added at the end of its list, its comments kept.

    Raises:
        TokenFileError: ``text`` is not a valid token file, already holds the hash, or its
            list does not end the file (the entry cannot be added without rewriting it).

    """
    entries = parse_token_file(text, source)
    if not entries:
        # Nothing to keep but comments, if that: write the file anew.
        return dump_token_file([entry])
    if any(e.sha256 == entry.sha256 for e in entries):
        raise TokenFileError(f"{source}: this token's hash is already in the file")
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    indent = 2
    if isinstance(root, yaml.MappingNode):
        for _, value in root.value:
            if isinstance(value, yaml.SequenceNode) and value.value:
                # Block sequences' items start after "- ": the dash is two columns before.
                indent = max(value.value[0].start_mark.column - 2, 0)
    candidate = (text if text.endswith("\n") else text + "\n") + _entry_lines(entry, indent)
    try:
        appended = parse_token_file(candidate, source)
    except TokenFileError:
        appended = []
    if appended != [*entries, entry]:
        raise TokenFileError(
            f"{source}: cannot append an entry: the `tokens` list does not end the file; "
            "add it by hand"
        )
    return candidate
