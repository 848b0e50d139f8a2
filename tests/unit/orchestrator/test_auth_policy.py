"""The role table names exactly the methods the orchestrator serves, and roles nest."""

from __future__ import annotations

import pytest

from orchestrator.app import API_SERVICES
from orchestrator.auth.limits import CreateRate, WatchLimit
from orchestrator.auth.policy import RULES, Access, Limit, rule_for
from orchestrator.errors import RateLimitedError
from polyfleet.roles import Role, grants, parse_role
from tests.helpers import method_path, served_methods


def test_the_table_names_exactly_the_served_methods() -> None:
    served = {method_path(method) for method in served_methods()}
    assert served - RULES.keys() == set(), "methods nobody may call: add them to policy.py"
    assert RULES.keys() - served == set(), "rules for methods that do not exist"
    # Health and reflection besides the API's own services.
    assert {name.rsplit("/", 2)[1] for name in served} == {
        *(service.full_name for service in API_SERVICES),
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


def test_an_unknown_method_has_no_rule() -> None:
    assert rule_for("/polyfleet.v1.AgentService/DropEverything") is None


def test_runner_service_is_for_runners_only_and_runners_for_it_only() -> None:
    for method, rule in RULES.items():
        is_runner_service = "/polyfleet.v1.RunnerService/" in method
        assert (rule.needs is Role.RUNNER) == is_runner_service, method


@pytest.mark.parametrize(
    ("method", "needs", "limit"),
    [
        ("/polyfleet.v1.AgentService/DeleteAgent", Role.ADMIN, None),
        ("/polyfleet.v1.WorkflowService/ApplyWorkflow", Role.ADMIN, None),
        ("/polyfleet.v1.AgentService/ListAgents", Role.READER, None),
        ("/polyfleet.v1.AgentExecutionService/ExecuteAgent", Role.OPERATOR, Limit.CREATE),
        ("/polyfleet.v1.WorkflowExecutionService/CancelWorkflowExecution", Role.OPERATOR, None),
        ("/polyfleet.v1.AgentExecutionService/WatchAgentExecution", Role.READER, Limit.WATCH),
        ("/grpc.health.v1.Health/Check", Access.PUBLIC, None),
        (
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            Access.AUTHENTICATED,
            None,
        ),
    ],
)
def test_rules(method: str, needs: Role | Access, limit: Limit | None) -> None:
    rule = rule_for(method)
    assert rule is not None
    assert (rule.needs, rule.limit) == (needs, limit)


def test_roles_nest_and_runner_stands_apart() -> None:
    assert grants(Role.ADMIN, Role.READER) and grants(Role.OPERATOR, Role.READER)
    assert not grants(Role.READER, Role.OPERATOR) and not grants(Role.OPERATOR, Role.ADMIN)
    assert grants(Role.RUNNER, Role.RUNNER)
    for role in (Role.READER, Role.OPERATOR, Role.ADMIN):
        assert not grants(role, Role.RUNNER) and not grants(Role.RUNNER, role)
    assert parse_role(" Admin ") is Role.ADMIN
    with pytest.raises(ValueError, match="expected one of reader, operator, admin, runner"):
        parse_role("root")


def test_watch_limit_counts_per_caller() -> None:
    limit = WatchLimit(2)
    limit.acquire("a")
    limit.acquire("a")
    limit.acquire("b")
    with pytest.raises(RateLimitedError, match="already has 2 Watch streams"):
        limit.acquire("a")
    limit.release("a")
    limit.acquire("a")
    assert limit.open_streams("a") == 2
    unlimited = WatchLimit(0)
    for _ in range(1000):
        unlimited.acquire("a")


def test_create_rate_is_a_token_bucket_per_caller() -> None:
    rate = CreateRate(rate=0.001, burst=3)
    for _ in range(3):
        rate.take("a")
    with pytest.raises(RateLimitedError, match="over its limit") as raised:
        rate.take("a")
    assert raised.value.kind == "create-rate"
    rate.take("b")
    off = CreateRate(rate=0, burst=1)
    for _ in range(1000):
        off.take("a")
