"""The caller of the RPC being served, as the auth interceptor established it.

The interceptor sets it for the duration of each call (a context variable, so it follows
the call's task and nothing else); services read it to record who did what.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from polyfleet.roles import Role


@dataclass(frozen=True)
class Caller:
    """An authenticated caller.

    Attributes:
        subject: Who: a token's subject, a JWT's subject claim, a certificate's common name,
            or a name for the orchestrator's own work.
        role: What they may do; None when authentication is off (anyone may do anything).
        via: How they were identified: ``token``, ``oidc``, ``mtls``, ``none`` (auth off)
            or ``system`` (the orchestrator itself).

    """

    subject: str
    role: Role | None
    via: str

    @property
    def role_name(self) -> str:
        """The role's name, empty when authentication is off or for the orchestrator."""
        return self.role.value if self.role else ""

    def __str__(self) -> str:
        return f"{self.subject} ({self.role_name or self.via})"


# When authentication is off, every call is from this caller.
ANONYMOUS = Caller("anonymous", None, "none")
# Work the orchestrator does on its own (its workflows' UpdateStatus, the reconciler).
ORCHESTRATOR = Caller("polyfleet-orchestrator", None, "system")

_current: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "polyfleet_caller", default=None
)


def current_caller() -> Caller | None:
    """The caller of the RPC being served, or None outside an RPC."""
    return _current.get()


@contextmanager
def calling_as(caller: Caller) -> Iterator[Caller]:
    """Serve what runs inside the block on behalf of ``caller``."""
    token = _current.set(caller)
    try:
        yield caller
    finally:
        _current.reset(token)
