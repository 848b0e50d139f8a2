"""Who did what: the caller of an RPC as the ``Actor`` recorded in statuses and resources.

Executions record an actor on every phase transition and as ``created_by``; agents and
workflows record ``created_by`` and ``updated_by``. Work that runs outside an RPC (the
workflows' ``UpdateStatus``, the reconciler) is the orchestrator's own.
"""

from __future__ import annotations

from orchestrator.auth.caller import ORCHESTRATOR, Caller, current_caller
from polyfleet.v1 import common_pb2


def actor_of(caller: Caller) -> common_pb2.Actor:
    """The ``Actor`` message of ``caller``: subject, role name (empty without a role), via."""
    return common_pb2.Actor(subject=caller.subject, role=caller.role_name, via=caller.via)


def current_actor() -> common_pb2.Actor:
    """The actor of the RPC being served, or the orchestrator outside an RPC."""
    return actor_of(current_caller() or ORCHESTRATOR)


def describe(actor: common_pb2.Actor) -> str:
    """``subject (role)`` for logs; the role is the ``via`` when empty, as in ``Caller``."""
    if not actor.subject:
        return "unknown"
    return f"{actor.subject} ({actor.role or actor.via or 'unknown'})"
