"""The role table: which role each RPC needs, and which per-caller limit it counts against.

One table for every service the orchestrator serves. A method missing from it is refused
(PERMISSION_DENIED), so a new RPC is closed until someone decides who may call it; a test
checks that the table names exactly the methods the services define.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from polyfleet.roles import Role


class Access(StrEnum):
    """Who may call a method besides the role ladder."""

    # No credential needed: health checks (load balancers and probes carry none).
    PUBLIC = "public"
    # Any valid credential, whatever its role: server reflection.
    AUTHENTICATED = "authenticated"


class Limit(StrEnum):
    """The per-caller limit a method counts against."""

    CREATE = "create"
    WATCH = "watch"


@dataclass(frozen=True)
class Rule:
    """What calling one method takes.

    Attributes:
        needs: The role it needs (``grants`` decides), or an :class:`Access` level.
        limit: The per-caller limit it counts against, if any.

    """

    needs: Role | Access
    limit: Limit | None = None


_READ = Rule(Role.READER)
_OPERATE = Rule(Role.OPERATOR)
_CREATE = Rule(Role.OPERATOR, Limit.CREATE)
_WATCH = Rule(Role.READER, Limit.WATCH)
_ADMIN = Rule(Role.ADMIN)
_RUNNER = Rule(Role.RUNNER)


def _definitions(kind: str) -> dict[str, Rule]:
    # Agents and workflows are definitions: the same CRUD and apply, admin to change.
    return {
        f"Create{kind}": _ADMIN,
        f"Update{kind}": _ADMIN,
        f"Delete{kind}": _ADMIN,
        f"Apply{kind}": _ADMIN,
        f"Get{kind}": _READ,
        f"List{kind}s": _READ,
    }


def _executions(kind: str) -> dict[str, Rule]:
    return {
        f"Create{kind}Execution": _CREATE,
        f"Execute{kind}": _CREATE,
        f"Cancel{kind}Execution": _OPERATE,
        f"Get{kind}Execution": _READ,
        f"List{kind}Executions": _READ,
        f"Watch{kind}Execution": _WATCH,
    }


_SERVICES: dict[str, dict[str, Rule]] = {
    "polyfleet.v1.AgentService": _definitions("Agent"),
    "polyfleet.v1.WorkflowService": _definitions("Workflow"),
    "polyfleet.v1.SessionService": {
        "CreateSession": _OPERATE,
        "GetSession": _READ,
        "ListSessions": _READ,
    },
    "polyfleet.v1.AgentExecutionService": _executions("Agent"),
    "polyfleet.v1.WorkflowExecutionService": _executions("Workflow"),
    # Every RunnerService call is also bound to the caller's running activity (binding.py).
    "polyfleet.v1.RunnerService": {
        name: _RUNNER
        for name in (
            "GetAgentExecutionContext",
            "EnsureThread",
            "ReportProgress",
            "AppendThreadMessages",
            "GetWorkflowExecutionContext",
            "PutCheckpoint",
            "GetCheckpoint",
            "CreateChildAgentExecution",
            "WatchChildAgentExecution",
            "CancelChildAgentExecution",
            "EmitEvent",
            "ReceiveEvents",
            "CreateChildWorkflowExecution",
            "WatchChildWorkflowExecution",
            "CancelChildWorkflowExecution",
        )
    },
    "polyfleet.v1.FleetService": {"GetFleetStatus": _READ, "WatchExecutions": _WATCH},
    # Schedules follow the workflows (admin to apply); pausing one is an operator's call.
    "polyfleet.v1.ScheduleService": {
        "ListSchedules": _READ,
        "GetSchedule": _READ,
        "PauseSchedule": _OPERATE,
        "ResumeSchedule": _OPERATE,
        "DeleteSchedule": _ADMIN,
    },
    "polyfleet.v1.EventService": {"PublishEvent": _OPERATE, "ListEvents": _READ},
    "grpc.health.v1.Health": {
        "Check": Rule(Access.PUBLIC),
        "Watch": Rule(Access.PUBLIC),
        "List": Rule(Access.PUBLIC),
    },
    "grpc.reflection.v1alpha.ServerReflection": {
        "ServerReflectionInfo": Rule(Access.AUTHENTICATED),
    },
}

RUNNER_SERVICE = "polyfleet.v1.RunnerService"

# "/package.Service/Method" -> its rule.
RULES: dict[str, Rule] = {
    f"/{service}/{method}": rule
    for service, methods in _SERVICES.items()
    for method, rule in methods.items()
}


def rule_for(method: str) -> Rule | None:
    """The rule of a full method name (``/polyfleet.v1.AgentService/GetAgent``), if any."""
    return RULES.get(method)


def is_runner_method(method: str) -> bool:
    """Whether ``method`` belongs to RunnerService."""
    return method.startswith(f"/{RUNNER_SERVICE}/")
