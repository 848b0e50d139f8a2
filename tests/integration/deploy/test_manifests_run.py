"""The dev overlay's containers, run as local processes against a dev server, are a fleet.

Their commands, arguments and environment come from the rendered manifests (the Deployment's
and StatefulSet's containers and the generated ConfigMap). Only what a cluster provides is
substituted: the Temporal address and namespace (the test's dev server), the API address (a
free loopback port), the data volume (a temporary directory), the mounted Secrets (the files of
``DevCredentials``) and the Secret-backed variables (its tokens). The orchestrator's probe
command decides when it is ready, the runner's readiness path when it is; then one agent
execution runs to COMPLETED.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from polyfleet.client import Client
from polyfleet.dev_credentials import DevCredentials
from polyfleet.roles import Role
from polyfleet.v1 import common_pb2
from tests.conftest import scripted_agent
from tests.helpers import assert_eventually, free_port
from tests.kustomize import REPO, Object, container_env, containers, one, overlay
from tests.processes import stop_process

COMPLETED = common_pb2.EXECUTION_PHASE_COMPLETED


def local_command(container: Object) -> list[str]:
    """The container's command and args, with this test's Python for ``python``."""
    command = [*container["command"], *container.get("args", [])]
    assert command[0] == "python", command
    return [sys.executable, *command[1:]]


def local_env(
    manifest_env: dict[str, str | None], substitutes: dict[str, str], files: dict[str, Path]
) -> dict[str, str]:
    """The process environment: the manifest's, with the cluster's parts substituted."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POLYFLEET_", "TEMPORAL_", "OTEL_"))
    }
    env["PYTHONPATH"] = str(REPO)
    for name, value in manifest_env.items():
        if name in substitutes:
            env[name] = substitutes[name]
        elif value is None:
            raise AssertionError(f"{name} comes from a Secret the test does not provide")
        elif value.startswith("/etc/polyfleet/"):
            assert value in files, f"{name}={value}: a mounted file the test does not provide"
            env[name] = str(files[value])
        else:
            env[name] = value
    return env


@contextlib.contextmanager
def process(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        child = subprocess.Popen(command, env=env, cwd=log.parent, stdout=out, stderr=out)
    try:
        yield child
    finally:
        stop_process(child, grace=30)


def probe(command: list[str], env: dict[str, str]) -> int:
    return subprocess.run(command, env=env, capture_output=True, timeout=30, check=False).returncode


async def test_the_dev_overlay_containers_start_a_working_fleet(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    objects = overlay("dev")
    orchestrator = containers(one(objects, "StatefulSet", "polyfleet-orchestrator"))[0]
    runner = containers(one(objects, "Deployment", "polyfleet-runner"))[0]
    credentials = DevCredentials.ensure(tmp_path / "credentials")
    api = f"127.0.0.1:{free_port()}"
    health_port = free_port()
    temporal = temporal_env.client
    cluster = {
        "TEMPORAL_ADDRESS": temporal.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": temporal.namespace,
        "POLYFLEET_API_ADDRESS": api,
        # The manifests' 0.0.0.0:7280 would bind every interface of this machine.
        "POLYFLEET_HTTP_ADDRESS": f"127.0.0.1:{free_port()}",
        "POLYFLEET_DATA_DIR": str(tmp_path / "data"),
        # The dev certificate names the loopback addresses, not the Service.
        "POLYFLEET_API_TLS_SERVER_NAME": "localhost",
        "POLYFLEET_API_TOKEN": credentials.tokens[Role.RUNNER],
        "POLYFLEET_RUNNER_HEALTH_PORT": str(health_port),
    }
    files = {
        "/etc/polyfleet/tls/tls.crt": credentials.server_cert,
        "/etc/polyfleet/tls/tls.key": credentials.server_key,
        "/etc/polyfleet/tls/ca.crt": credentials.ca_cert,
        "/etc/polyfleet/auth/tokens.yaml": credentials.tokens_file,
    }
    orchestrator_env = local_env(container_env(objects, orchestrator), cluster, files)
    runner_env = local_env(container_env(objects, runner), cluster, files)
    # The queues are the manifests' own: the runner's must be the orchestrator's.
    for name in (
        "TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE",
        "TEMPORAL_WORKFLOW_EXECUTION_RUNNER_TASK_QUEUE",
    ):
        assert orchestrator_env[name] == runner_env[name]
        assert runner_env[name].startswith("dev-")
    health = local_command({"command": orchestrator["readinessProbe"]["exec"]["command"]})
    ready = runner["readinessProbe"]["httpGet"]["path"]
    (tmp_path / "orchestrator").mkdir()
    (tmp_path / "runner").mkdir()

    # Nothing listens yet: the probe says so.
    assert await asyncio.to_thread(probe, health, orchestrator_env) == 1
    with process(
        local_command(orchestrator), orchestrator_env, tmp_path / "orchestrator" / "log"
    ) as orch:
        await assert_eventually(
            lambda: asyncio.to_thread(probe, health, orchestrator_env),
            lambda code: code == 0 or orch.poll() is not None,
            timeout=90,
            interval=0.5,
            message="the orchestrator's readiness probe did not pass",
        )
        assert orch.poll() is None, (tmp_path / "orchestrator" / "log").read_text()
        with process(local_command(runner), runner_env, tmp_path / "runner" / "log") as run:

            async def readiness() -> int:
                if run.poll() is not None:
                    return -1
                async with httpx.AsyncClient() as http:
                    try:
                        response = await http.get(f"http://127.0.0.1:{health_port}{ready}")
                    except httpx.TransportError:
                        return 0
                    return response.status_code

            code = await assert_eventually(
                readiness,
                lambda c: c in (200, -1),
                timeout=90,
                interval=0.5,
                message="the runner's readiness probe did not pass",
            )
            assert code == 200, (tmp_path / "runner" / "log").read_text()

            client = await Client.connect(
                api,
                tls=True,
                root_cert=credentials.ca_cert,
                token=credentials.tokens[Role.ADMIN],
            )
            async with client:
                await client.agents.create(scripted_agent("deployed", hello="hi from the pod"))
                done = await client.run_agent("deployed", "hello", wait=True, timeout=60)
            assert done.status.phase == COMPLETED
