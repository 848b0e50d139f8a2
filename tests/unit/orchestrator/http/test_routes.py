"""The route table from the protos' google.api.http options, and request building."""

from __future__ import annotations

import pytest

from orchestrator.app import API_SERVICES
from orchestrator.http.routes import (
    HttpRoute,
    MethodNotAllowedError,
    PathTemplate,
    RequestError,
    RouteNotFoundError,
    RouteTable,
)
from polyfleet.v1 import agent_execution_pb2, common_pb2

TABLE = RouteTable.from_services(API_SERVICES)


def route(http_method: str, path: str) -> tuple[HttpRoute, dict[str, str]]:
    return TABLE.match(http_method, path)


def build(
    http_method: str, path: str, query: list[tuple[str, str]] | None = None, body: bytes = b""
) -> object:
    found, params = route(http_method, path)
    return found.build_request(params, query or [], body)


def test_every_annotated_method_is_routed_and_runner_methods_are_not() -> None:
    served = {r.method.full_name for r in TABLE.routes}
    annotated = [m.full_name for s in API_SERVICES for m in s.methods if s.name != "RunnerService"]
    assert served == set(annotated)
    assert not any(".RunnerService." in name for name in served)


@pytest.mark.parametrize(
    ("http_method", "path", "method", "params"),
    [
        ("POST", "/v1/agentExecutions", "CreateAgentExecution", {}),
        ("POST", "/v1/agentExecutions:execute", "ExecuteAgent", {}),
        ("GET", "/v1/agentExecutions/ae-1", "GetAgentExecution", {"id": "ae-1"}),
        ("POST", "/v1/agentExecutions/ae-1:cancel", "CancelAgentExecution", {"id": "ae-1"}),
        ("GET", "/v1/agentExecutions/ae-1/events", "WatchAgentExecution", {"id": "ae-1"}),
        ("PUT", "/v1/agents/helper", "ApplyAgent", {"agent.name": "helper"}),
        ("PATCH", "/v1/workflows/flow", "UpdateWorkflow", {"workflow.name": "flow"}),
        ("GET", "/v1/executions:watch", "WatchExecutions", {}),
        ("POST", "/v1/schedules/flow:pause", "PauseSchedule", {"workflow": "flow"}),
        # Escaped characters are decoded inside their segment.
        ("GET", "/v1/agents/a%2Fb", "GetAgent", {"name": "a/b"}),
    ],
)
def test_paths_match_their_method_and_variables(
    http_method: str, path: str, method: str, params: dict[str, str]
) -> None:
    found, variables = route(http_method, path)
    assert found.method.name == method
    assert variables == params


def test_a_custom_verb_is_not_swallowed_by_a_variable() -> None:
    with pytest.raises(RouteNotFoundError):
        route("GET", "/v1/agentExecutions/ae-1:bogus")
    with pytest.raises(MethodNotAllowedError) as raised:
        route("GET", "/v1/agentExecutions/ae-1:cancel")
    assert raised.value.allowed == ["POST"]


def test_unknown_paths_and_wrong_verbs() -> None:
    with pytest.raises(RouteNotFoundError):
        route("GET", "/v1/nothing")
    with pytest.raises(RouteNotFoundError):
        route("GET", "/v1/agentExecutions/ae-1/events/more")
    with pytest.raises(MethodNotAllowedError) as raised:
        route("DELETE", "/v1/agentExecutions")
    assert raised.value.allowed == ["GET", "POST"]


def test_templates_parse_literals_variables_and_verbs() -> None:
    template = PathTemplate.parse("/v1/agents/{agent.name}:check")
    assert template.segments == ("v1", "agents", ("agent.name",))
    assert template.verb == "check"
    assert template.literal_prefix == "/v1/agents"
    assert template.match("/v1/agents/a:check") == {"agent.name": "a"}
    assert template.match("/v1/agents/a") is None
    with pytest.raises(ValueError, match="unsupported segment"):
        PathTemplate.parse("/v1/{name=things/*}")


def test_query_parameters_fill_scalars_enums_timestamps_and_label_maps() -> None:
    request = build(
        "GET",
        "/v1/agentExecutions",
        [
            ("pageSize", "5"),
            ("page_token", "t"),
            ("phase", "EXECUTION_PHASE_RUNNING"),
            ("view", "2"),
            ("createdAfter", "2026-01-02T03:04:05Z"),
            ("labels.team", "a"),
            ("labels.tier", "gold"),
        ],
    )
    assert isinstance(request, agent_execution_pb2.ListAgentExecutionsRequest)
    assert request.page_size == 5
    assert request.page_token == "t"
    assert request.phase == common_pb2.EXECUTION_PHASE_RUNNING
    assert request.view == 2
    assert request.created_after.ToJsonString() == "2026-01-02T03:04:05Z"
    assert dict(request.labels) == {"team": "a", "tier": "gold"}


def test_nested_fields_by_dotted_name_and_path_variables_over_the_body() -> None:
    request = build(
        "PUT",
        "/v1/agents/from-path",
        body=b'{"name": "from-body", "instructions": "Be brief."}',
    )
    assert request.agent.name == "from-path"  # type: ignore[attr-defined]
    assert request.agent.instructions == "Be brief."  # type: ignore[attr-defined]
    nested = build("POST", "/v1/agentExecutions", [("execution.agent", "a")], b"{}")
    assert nested.execution.agent == "a"  # type: ignore[attr-defined]


def test_a_star_body_fills_the_whole_request_with_either_name_style() -> None:
    request = build(
        "POST",
        "/v1/agentExecutions:execute",
        body=b'{"request": {"execution": {"agent": "a", "message": "hi"}, "request_id": "r"},'
        b' "timeout": "1.5s"}',
    )
    assert isinstance(request, agent_execution_pb2.ExecuteAgentRequest)
    assert request.request.execution.message == "hi"
    assert request.request.request_id == "r"
    assert request.timeout.ToTimedelta().total_seconds() == 1.5


@pytest.mark.parametrize(
    ("query", "body", "field", "says"),
    [
        ([("phase", "EXECUTION_PHASE_NAPPING")], b"", "phase", "EXECUTION_PHASE_NAPPING"),
        ([("pageSize", "many")], b"", "pageSize", "many"),
        ([("createdAfter", "yesterday")], b"", "createdAfter", "timestamp"),
        ([("pageSize", "1"), ("pageSize", "2")], b"", "pageSize", "more than once"),
        ([("colour", "red")], b"", "colour", "no field named 'colour'"),
        ([("labels", "x")], b"", "labels", "labels.KEY=VALUE"),
        ([("agent.name", "x")], b"", "agent.name", "not a message field"),
    ],
)
def test_bad_query_parameters_name_the_parameter(
    query: list[tuple[str, str]], body: bytes, field: str, says: str
) -> None:
    with pytest.raises(RequestError) as raised:
        build("GET", "/v1/agentExecutions", query, body)
    assert raised.value.field == field
    assert says in raised.value.description


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (b'{"execution": {"agentt": "a"}}', "execution.agentt", 'no field named "agentt"'),
        (b'{"execution": {"priority": "high"}}', "execution.priority", "high"),
        (b'{"multitaskStrategy": "SOMETIMES"}', "multitaskStrategy", "SOMETIMES"),
        (b'{"execution": ', "", "Failed to load JSON"),
        (b"\xff\xfe", "", "not UTF-8"),
    ],
)
def test_bad_bodies_name_the_field_and_keep_the_parser_message(
    body: bytes, field: str, says: str
) -> None:
    with pytest.raises(RequestError) as raised:
        build("POST", "/v1/agentExecutions", body=body)
    assert raised.value.field == field
    assert says in raised.value.description


def test_a_body_on_a_route_without_one_is_refused() -> None:
    with pytest.raises(RequestError, match="takes no body"):
        build("GET", "/v1/agentExecutions", body=b'{"pageSize": 1}')


def test_a_named_body_field_prefixes_the_error_path() -> None:
    with pytest.raises(RequestError) as raised:
        build("PUT", "/v1/agents/a", body=b'{"instructionz": "x"}')
    assert raised.value.field == "agent.instructionz"
