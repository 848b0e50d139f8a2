"""``polyfleet tokens``: make API bearer tokens and hash them for the token file.

Nothing here talks to the API: the orchestrator reads the hashes from
``POLYFLEET_AUTH_TOKENS_FILE`` (docs/security.md). The token itself is printed once, alone
on stdout, so it can be captured; it is never written to a file.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import tempfile
from pathlib import Path

from polyfleet.cli.errors import EXIT_OK, CliError
from polyfleet.cli.output import Console
from polyfleet.roles import Role
from polyfleet.tokens import (
    TokenEntry,
    TokenFileError,
    append_entry,
    dump_token_file,
    hash_token,
    make_entry,
    new_token,
)


def cmd_tokens_create(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet tokens create --subject S --role R [--file PATH]``."""
    role: Role = args.role
    token = new_token()
    try:
        entry = make_entry(args.subject, role, token)
    except ValueError as exc:
        raise CliError(f"--subject: {exc}") from None
    if args.file:
        path = Path(args.file)
        _add_to_file(path, entry)
        print(f"added {entry.subject} ({role.value}) to {path}", file=console.err)
    else:
        print(
            "# add this entry to the `tokens` list of POLYFLEET_AUTH_TOKENS_FILE:",
            file=console.err,
        )
        entry_lines = dump_token_file([entry]).split("tokens:\n", 1)[1]
        print(entry_lines, end="", file=console.err)
    print(token, file=console.out)
    return EXIT_OK


def _add_to_file(path: Path, entry: TokenEntry) -> None:
    """Add ``entry`` to the token file at ``path``, creating it (mode 0600) if need be."""
    try:
        try:
            text = path.read_text()
        except FileNotFoundError:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(dump_token_file([entry]))
            return
        new = append_entry(text, entry, str(path))
        # Replaced whole, so the orchestrator never reads half a file; its mode is kept.
        mode = stat.S_IMODE(path.stat().st_mode)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(new)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, mode)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except TokenFileError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{path}: cannot write the token file ({exc.strerror or exc})") from None


def cmd_tokens_hash(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet tokens hash``: the ``sha256:`` hash of the token read from stdin."""
    token = sys.stdin.readline().strip()
    if not token:
        raise CliError("no token on stdin", hint='echo -n "$TOKEN" | polyfleet tokens hash')
    print(hash_token(token), file=console.out)
    return EXIT_OK
