"""The API's roles: one definition for the server, the token tools and the docs.

``reader`` < ``operator`` < ``admin`` each include the one before; ``runner`` stands apart:
it may call RunnerService and nothing else, and no other role may call RunnerService.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a caller may do (docs/security.md, "Roles")."""

    READER = "reader"
    OPERATOR = "operator"
    ADMIN = "admin"
    RUNNER = "runner"


# The public roles, each including the ones before it.
_LADDER = (Role.READER, Role.OPERATOR, Role.ADMIN)


def parse_role(text: str) -> Role:
    """The role named ``text`` (case-insensitive).

    Raises:
        ValueError: Not a role; the message lists the roles.

    """
    try:
        return Role(text.strip().lower())
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise ValueError(f"unknown role {text!r}: expected one of {names}") from None


def grants(role: Role, needed: Role) -> bool:
    """Whether a caller with ``role`` may call a method that needs ``needed``."""
    if Role.RUNNER in (role, needed):
        return role is needed
    return _LADDER.index(role) >= _LADDER.index(needed)
