"""The HTTP/JSON API on a real secure fleet: TLS, role tokens, Temporal, runner, LMDB."""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from temporalio.client import Client

from orchestrator.http.server import HttpAddressInUseError
from polyfleet.config import HttpSettings
from polyfleet.roles import Role
from polyfleet.v1 import agent_pb2
from tests.conftest import Fleet, scripted_agent, start_fleet, stopping
from tests.helpers import assert_eventually

PROBLEM = "application/problem+json"


@asynccontextmanager
async def http_client(
    fleet: Fleet, role: Role | None = Role.ADMIN, connections: int = 10
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTPS client of the fleet's HTTP API with ``role``'s token (None: none).

    ``connections`` bounds its open connections: each SSE stream holds one.
    """
    assert fleet.credentials is not None, "the fleet is secure"
    headers = {"Authorization": f"Bearer {fleet.credentials.tokens[role]}"} if role else {}
    async with httpx.AsyncClient(
        base_url=f"https://{fleet.orchestrator.http_address}",
        verify=ssl.create_default_context(cafile=str(fleet.credentials.ca_cert)),
        headers=headers,
        timeout=60,
        limits=httpx.Limits(max_connections=connections),
    ) as client:
        yield client


def agent_json(agent: agent_pb2.Agent) -> dict[str, Any]:
    return json_format.MessageToDict(agent)


def slow_agent(name: str = "slow") -> agent_pb2.Agent:
    agent = scripted_agent(name=name)
    agent.model.scripted.default_reply = "one two three four five six seven eight nine ten"
    agent.model.scripted.chunk_words = 1
    agent.model.scripted.chunk_delay_ms = 400  # ~4 s of streaming
    return agent


async def apply(client: httpx.AsyncClient, agent: agent_pb2.Agent) -> None:
    response = await client.put(f"/v1/agents/{agent.name}", json=agent_json(agent))
    assert response.status_code == 200, response.text
    assert response.json()["name"] == agent.name


async def create(
    client: httpx.AsyncClient, agent: str, message: str, **extra: Any
) -> httpx.Response:
    execution = {"agent": agent, "message": message, **extra}
    return await client.post("/v1/agentExecutions", json={"execution": execution})


async def phase_of(client: httpx.AsyncClient, execution_id: str) -> str:
    response = await client.get(f"/v1/agentExecutions/{execution_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["status"]["phase"])


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


async def test_create_is_202_with_a_location_that_gets_the_execution(fleet: Fleet) -> None:
    async with http_client(fleet) as client:
        await apply(client, scripted_agent(**{"capital of france": "Paris."}))
        response = await create(client, "assistant", "capital of france?")

        assert response.status_code == 202, response.text
        created = response.json()
        assert created["id"]
        assert created["agent"] == "assistant"
        assert response.headers["location"] == f"/v1/agentExecutions/{created['id']}"

        fetched = await client.get(response.headers["location"])
        assert fetched.status_code == 200
        assert fetched.json()["id"] == created["id"]
        await assert_eventually(
            lambda: phase_of(client, created["id"]), lambda p: p == "EXECUTION_PHASE_COMPLETED"
        )
        done = (await client.get(response.headers["location"])).json()
        assert done["status"]["outputText"] == "Paris."
        # int64 as a string, as proto3 JSON has it.
        assert isinstance(done["status"]["lastSequence"], str)


async def test_execute_returns_the_full_execution_with_its_real_output(fleet: Fleet) -> None:
    async with http_client(fleet) as client:
        await apply(client, scripted_agent(**{"ping": "pong and more"}))
        response = await client.post(
            "/v1/agentExecutions:execute",
            json={"request": {"execution": {"agent": "assistant", "message": "ping"}}},
        )

    assert response.status_code == 200, response.text
    done = response.json()
    assert done["status"]["phase"] == "EXECUTION_PHASE_COMPLETED"
    assert done["status"]["outputText"] == "pong and more"
    assert done["status"]["messages"][-1]["content"] == "pong and more"


async def test_execute_past_its_timeout_is_504_naming_the_execution_which_runs_on(
    fleet: Fleet,
) -> None:
    async with http_client(fleet) as client:
        await apply(client, slow_agent())
        response = await client.post(
            "/v1/agentExecutions:execute",
            json={
                "request": {"execution": {"agent": "slow", "message": "take your time"}},
                "timeout": "0.2s",
            },
        )

        body = assert_problem(response, 504)
        assert body["code"] == "DEADLINE_EXCEEDED"
        execution_id = body["executionId"]
        listed = (await client.get("/v1/agentExecutions", params={"agent": "slow"})).json()
        assert [e["id"] for e in listed["executions"]] == [execution_id]
        assert execution_id in body["detail"]
        # The wait ended, not the execution.
        await assert_eventually(
            lambda: phase_of(client, execution_id), lambda p: p == "EXECUTION_PHASE_COMPLETED"
        )


async def test_bad_input_is_400_naming_the_field(fleet: Fleet) -> None:
    async with http_client(fleet) as client:
        await apply(client, scripted_agent())

        typo = await client.post(
            "/v1/agentExecutions", json={"execution": {"agentt": "assistant", "message": "hi"}}
        )
        body = assert_problem(typo, 400)
        assert body["code"] == "INVALID_ARGUMENT"
        assert [v["field"] for v in body["fieldViolations"]] == ["execution.agentt"]
        assert "agentt" in body["detail"]

        enum = await client.get("/v1/agentExecutions", params={"phase": "EXECUTION_PHASE_NAPPING"})
        body = assert_problem(enum, 400)
        assert [v["field"] for v in body["fieldViolations"]] == ["phase"]
        assert "EXECUTION_PHASE_NAPPING" in body["detail"]

        not_json = await client.post(
            "/v1/agentExecutions",
            content=b'{"execution": ',
            headers={"Content-Type": "application/json"},
        )
        body = assert_problem(not_json, 400)
        assert "JSON" in body["detail"]

        # A value only the service can judge: its BadRequest detail becomes fieldViolations.
        too_long = await client.post(
            "/v1/agentExecutions:execute",
            json={
                "request": {"execution": {"agent": "assistant", "message": "hi"}},
                "timeout": "301s",
            },
        )
        body = assert_problem(too_long, 400)
        assert [v["field"] for v in body["fieldViolations"]] == ["timeout"]

        # The body's JSON accepts proto field names as well as lowerCamelCase.
        snake = await client.post(
            "/v1/agentExecutions",
            json={"execution": {"agent": "assistant", "message": "hi"}, "request_id": "r-1"},
        )
        assert snake.status_code == 202, snake.text


async def test_authentication_roles_and_unknown_ids(fleet: Fleet) -> None:
    async with http_client(fleet, None) as anonymous:
        response = await anonymous.get("/v1/agentExecutions")
        body = assert_problem(response, 401)
        assert body["code"] == "UNAUTHENTICATED"
        assert response.headers["www-authenticate"] == "Bearer"
        # Health probes need no token.
        health = await anonymous.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "SERVING"}

    async with http_client(fleet, Role.ADMIN) as admin:
        await apply(admin, scripted_agent())
    async with http_client(fleet, Role.READER) as reader:
        refused = await create(reader, "assistant", "hi")
        body = assert_problem(refused, 403)
        assert body["code"] == "PERMISSION_DENIED"
        # A reader still reads.
        assert (await reader.get("/v1/agentExecutions")).status_code == 200

        missing = await reader.get("/v1/agentExecutions/ae-doesnotexist")
        body = assert_problem(missing, 404)
        assert "ae-doesnotexist" in body["detail"]


async def test_unknown_routes_wrong_verbs_and_oversized_bodies(fleet: Fleet) -> None:
    async with http_client(fleet) as client:
        unknown = await client.get("/v1/nothingHere")
        assert_problem(unknown, 404)

        wrong_verb = await client.delete("/v1/agentExecutions")
        assert_problem(wrong_verb, 405)
        assert set(wrong_verb.headers["allow"].split(", ")) == {"GET", "POST"}

        limit = fleet.orchestrator.settings.api.grpc_max_message_bytes
        huge = await client.post(
            "/v1/agentExecutions",
            content=b" " * (limit + 1),
            headers={"Content-Type": "application/json"},
        )
        assert_problem(huge, 413)


async def test_list_pages_with_page_size_and_filters_by_label(fleet: Fleet) -> None:
    async with http_client(fleet) as client:
        await apply(client, scripted_agent())
        ids: dict[str, list[str]] = {"a": [], "b": []}
        for index in range(5):
            team = "a" if index % 2 == 0 else "b"
            response = await create(client, "assistant", f"hi {index}", labels={"team": team})
            assert response.status_code == 202, response.text
            ids[team].append(response.json()["id"])

        seen: list[str] = []
        token = ""
        pages = 0
        while True:
            params = {"pageSize": "2", **({"pageToken": token} if token else {})}
            page = (await client.get("/v1/agentExecutions", params=params)).json()
            pages += 1
            assert len(page["executions"]) <= 2
            seen.extend(e["id"] for e in page["executions"])
            token = page.get("nextPageToken", "")
            if not token:
                break
        assert pages == 3
        assert sorted(seen) == sorted(ids["a"] + ids["b"])

        team_a = (await client.get("/v1/agentExecutions?labels.team=a&page_size=10")).json()
        assert sorted(e["id"] for e in team_a["executions"]) == sorted(ids["a"])
        assert all(e["labels"] == {"team": "a"} for e in team_a["executions"])


async def test_cancel_over_http_ends_the_execution_cancelled(fleet: Fleet) -> None:
    async with http_client(fleet) as client:
        await apply(client, slow_agent())
        created = (await create(client, "slow", "go")).json()
        await assert_eventually(
            lambda: phase_of(client, created["id"]), lambda p: p == "EXECUTION_PHASE_RUNNING"
        )

        response = await client.post(f"/v1/agentExecutions/{created['id']}:cancel", json={})

        assert response.status_code == 200, response.text
        assert response.json()["id"] == created["id"]
        await assert_eventually(
            lambda: phase_of(client, created["id"]),
            lambda p: p == "EXECUTION_PHASE_CANCELLED",
            timeout=15,
        )


async def test_agents_crud_over_http(fleet: Fleet) -> None:
    async with http_client(fleet) as client:
        agent = scripted_agent(name="crud")
        created = await client.post("/v1/agents", json=agent_json(agent))
        assert created.status_code == 200, created.text
        # Creating it again is the service's FAILED_PRECONDITION: 400 in Google's mapping.
        again = await client.post("/v1/agents", json=agent_json(agent))
        assert assert_problem(again, 400)["code"] == "FAILED_PRECONDITION"

        patched = await client.patch(
            "/v1/agents/crud", json={**agent_json(agent), "instructions": "Be brief."}
        )
        assert patched.status_code == 200, patched.text
        got = (await client.get("/v1/agents/crud")).json()
        assert got["instructions"] == "Be brief."
        names = [a["name"] for a in (await client.get("/v1/agents")).json()["agents"]]
        assert "crud" in names

        deleted = await client.delete("/v1/agents/crud")
        assert deleted.status_code == 200
        assert deleted.json() == {}
        assert_problem(await client.get("/v1/agents/crud"), 404)


async def test_an_http_port_in_use_stops_the_start_naming_the_variable(
    temporal_client: Client, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(HttpAddressInUseError) as raised:
            await start_fleet(
                temporal_client, tmp_path, with_runner=False, http=HttpSettings(address=address)
            )
    assert f"cannot listen on POLYFLEET_HTTP_ADDRESS={address}" in str(raised.value)


async def test_http_can_be_turned_off(temporal_client: Client, tmp_path: Path) -> None:
    fleet = await start_fleet(
        temporal_client, tmp_path, with_runner=False, http=HttpSettings(enabled=False)
    )
    async with stopping(fleet):
        assert fleet.orchestrator.http_address == ""
        # gRPC serves as before.
        assert (await fleet.agents.ListAgents(agent_pb2.ListAgentsRequest())).agents == []
