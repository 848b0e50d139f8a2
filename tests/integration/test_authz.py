"""Every RPC of every service, called without credentials and with each role's token over TLS.

The expectation of each call comes from the role table (orchestrator/auth/policy.py) and
the role ladder, never from the server's answer: no credential is UNAUTHENTICATED except
for health; a role the table does not grant is PERMISSION_DENIED; a granted call gets past
authorization (whatever its empty request then earns: NOT_FOUND, INVALID_ARGUMENT, ...).
A runner's RunnerService call also needs its running activity (test_runner_binding.py):
here it names none, so it is refused as RUNNER_NOT_BOUND, not for its role.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from grpc_reflection.v1alpha import reflection_pb2
from temporalio.client import Client

from orchestrator.auth.policy import RULES, Access
from polyfleet.error_details import error_info
from polyfleet.roles import Role, grants
from polyfleet.v1 import (
    agent_pb2,
    agent_pb2_grpc,
)
from tests.conftest import Fleet, start_fleet, stopping
from tests.helpers import method_path, served_methods

_REFUSALS = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


async def _call(channel: grpc.aio.Channel, method: MethodDescriptor) -> grpc.aio.AioRpcError | None:
    """Call ``method`` with an empty request; its error, or None if it answered."""
    path = method_path(method)
    request_type = message_factory.GetMessageClass(method.input_type)
    response_type = message_factory.GetMessageClass(method.output_type)
    request: Any = request_type()
    if method.full_name.endswith("ServerReflectionInfo"):
        request = reflection_pb2.ServerReflectionRequest(list_services="")
    try:
        if method.client_streaming:
            stream = channel.stream_stream(
                path, request.SerializeToString, response_type.FromString
            )(iter([request]), timeout=10)
            async for _ in stream:
                break
            stream.cancel()
        elif method.server_streaming:
            call = channel.unary_stream(
                path, request_type.SerializeToString, response_type.FromString
            )(request, timeout=10)
            # Headers come only from a servicer, so past authorization; a refusal ends the
            # call without them. (Health's Watch and WatchExecutions never end by themselves.)
            await call.initial_metadata()
            if call.done():
                async for _ in call:
                    break
            call.cancel()
        else:
            await channel.unary_unary(
                path, request_type.SerializeToString, response_type.FromString
            )(request, timeout=10)
    except grpc.aio.AioRpcError as err:
        return err
    return None


def _expected(role: Role | None, path: str) -> grpc.StatusCode | None:
    """The refusal the table calls for, or None when the call must get past auth."""
    needs = RULES[path].needs
    if needs is Access.PUBLIC:
        return None
    if role is None:
        return grpc.StatusCode.UNAUTHENTICATED
    if needs is Access.AUTHENTICATED or grants(role, needs):
        return None
    return grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("role", [None, *Role], ids=lambda r: r.value if r else "no-credential")
async def test_every_rpc_answers_each_role_as_the_table_says(
    temporal_client: Client, tmp_path: Path, role: Role | None
) -> None:
    methods = served_methods()
    assert len(methods) == len(RULES)
    wrong = []
    async with stopping(await start_fleet(temporal_client, tmp_path, with_runner=False)) as fleet:
        channel = fleet.channel_as(role)
        try:
            for method in methods:
                path = method_path(method)
                err = await _call(channel, method)
                code = err.code() if err else None
                expected = _expected(role, path)
                if expected is not None:
                    if code is not expected:
                        wrong.append(f"{path}: {code}, expected {expected}")
                    continue
                if role is Role.RUNNER and "RunnerService" in path:
                    # Granted by role; refused because it names no running activity.
                    info = error_info(err) if err else None
                    if code is not grpc.StatusCode.PERMISSION_DENIED or (
                        info is None or info.reason != "RUNNER_NOT_BOUND"
                    ):
                        wrong.append(f"{path}: {code}, expected RUNNER_NOT_BOUND")
                elif code in _REFUSALS:
                    wrong.append(
                        f"{path}: {code} ({err.details() if err else ''}), expected past auth"
                    )
        finally:
            await channel.close()
    assert wrong == []


async def test_a_refusal_names_the_role_needed_and_the_callers(fleet: Fleet) -> None:
    channel = fleet.channel_as(Role.READER)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await agent_pb2_grpc.AgentServiceStub(channel).DeleteAgent(
                agent_pb2.DeleteAgentRequest(name="x")
            )
    finally:
        await channel.close()
    assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert raised.value.details() == "DeleteAgent needs role admin; dev-reader has role reader"
