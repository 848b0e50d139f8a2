"""The local Fleet and the dev/demo commands, with fake Temporal, orchestrator and runners.

The fakes are real processes (a TCP listener for Temporal, the fake gRPC API for the
orchestrator, sleepers for runners), so start order, readiness, signals, log files and
cleanup are all exercised for real; only what the children do is fake.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from polyfleet.cli import dev, main
from polyfleet.dev_credentials import DevCredentials
from polyfleet.fleet import Fleet, FleetConfig, FleetError, free_port
from polyfleet.roles import Role

FAKE_API = Path(__file__).with_name("fake_api.py")
# Two runners first, then the orchestrator, then Temporal.
STOP_ORDER = ["runner", "runner", "orchestrator", "temporal"]

FAKE_TEMPORAL = """\
#!{python}
import json, os, signal, socket, sys, time
args = sys.argv[1:]
data = os.path.dirname(args[args.index("--db-filename") + 1])
with open(os.path.join(data, "temporal-args.json"), "w") as f:
    json.dump(args, f)
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind((args[args.index("--ip") + 1], int(args[args.index("--port") + 1])))
sock.listen()
def stop(*_):
    with open(os.path.join(data, "stops.log"), "a") as f:
        f.write("temporal\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("fake temporal listening", flush=True)
while True:
    time.sleep(1)
"""

# argv: data dir, SIGTERM behaviour ("exit", "slow" or "ignore").
FAKE_RUNNER = """\
import os, signal, sys, time
data, mode = sys.argv[1], sys.argv[2]
def stop(*_):
    with open(os.path.join(data, "stops.log"), "a") as f:
        f.write("runner\\n")
    if mode == "slow":
        time.sleep(1)
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "ignore" else stop)
open(os.path.join(data, f"runner-{os.getpid()}.started"), "w").close()
print("fake runner up", flush=True)
while True:
    time.sleep(1)
"""


def fake_config(tmp_path: Path, runner_mode: str = "exit", **overrides: Any) -> FleetConfig:
    """A FleetConfig whose children are fakes, on free ports, in tmp_path/data."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    temporal = tmp_path / "temporal"
    temporal.write_text(FAKE_TEMPORAL.format(python=sys.executable), encoding="utf-8")
    temporal.chmod(0o755)
    env = {
        **os.environ,
        "FAKE_ENV_DUMP": str(data / "orchestrator-env.json"),
        "FAKE_STOPS_LOG": str(data / "stops.log"),
        "TEMPORAL_API_KEY": "secret-of-another-cluster",
        "TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE": "custom_runner_queue",
    }
    values: dict[str, Any] = {
        "data_dir": data,
        "runners": 1,
        "temporal_port": free_port(),
        "temporal_ui_port": free_port(),
        "api_address": f"127.0.0.1:{free_port()}",
        "http_address": f"127.0.0.1:{free_port()}",
        "startup_timeout": 20.0,
        "stop_timeout": 5.0,
        "temporal_executable": temporal,
        "orchestrator_command": (sys.executable, str(FAKE_API)),
        "runner_command": (sys.executable, "-c", FAKE_RUNNER, str(data), runner_mode),
        "base_env": env,
    }
    values.update(overrides)
    return FleetConfig(**values)


def gone(pid: int) -> bool:
    """True once a process no longer runs (absent, or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def stopped_fleets() -> Iterator[list[Fleet]]:
    """Fleets registered here are stopped after the test, whatever happened."""
    fleets: list[Fleet] = []
    yield fleets
    for fleet in fleets:
        fleet.stop()


def test_start_wires_every_child_and_stop_leaves_none(
    tmp_path: Path, stopped_fleets: list[Fleet]
) -> None:
    config = fake_config(tmp_path, runners=2)
    lines: list[str] = []
    fleet = Fleet(config, report=lines.append)
    stopped_fleets.append(fleet)

    fleet.start()

    assert [c.name for c in fleet.children] == ["temporal", "orchestrator", "runner-1", "runner-2"]
    assert all(c.alive() for c in fleet.children)
    data = config.data_dir
    args = json.loads((data / "temporal-args.json").read_text())
    assert args[:2] == ["server", "start-dev"]
    assert args[args.index("--port") + 1] == str(config.temporal_port)
    assert args[args.index("--ui-port") + 1] == str(config.temporal_ui_port)
    assert args[args.index("--db-filename") + 1] == str(data / "temporal.db")
    assert args[args.index("--namespace") + 1] == "default"
    env = json.loads((data / "orchestrator-env.json").read_text())
    assert env["TEMPORAL_ADDRESS"] == config.temporal_address
    assert env["TEMPORAL_NAMESPACE"] == "default"
    assert env["POLYFLEET_API_ADDRESS"] == config.api_address
    assert env["POLYFLEET_DATA_DIR"] == str(data / "orchestrator")
    assert env["POLYFLEET_HTTP_ENABLED"] == "true"
    assert env["POLYFLEET_HTTP_ADDRESS"] == config.http_address
    assert env["POLYFLEET_HTTP_TEMPORAL_UI_URL"] == config.temporal_ui_url
    assert fleet.dashboard_url == f"http://{config.http_address}/"
    assert f"orchestrator dashboard at {fleet.dashboard_url}" in lines
    assert fleet.metrics_url == f"http://127.0.0.1:{env['POLYFLEET_METRICS_PORT']}/metrics"
    assert f"orchestrator metrics at {fleet.metrics_url}" in lines
    assert "TEMPORAL_API_KEY" not in env
    assert env["TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE"] == "custom_runner_queue"
    for child in fleet.children:
        assert child.log_path == data / "logs" / f"{child.name}.log"
        assert any(str(child.log_path) in line for line in lines)
    wait_until(lambda: len(list(data.glob("runner-*.started"))) == 2)

    fleet.stop()
    fleet.stop()

    assert all(gone(c.pid) for c in fleet.children)
    assert (data / "stops.log").read_text().split() == STOP_ORDER
    assert "fake orchestrator serving" in (data / "logs" / "orchestrator.log").read_text()


def test_orchestrator_exiting_early_fails_with_its_log_and_stops_temporal(
    tmp_path: Path,
) -> None:
    config = fake_config(tmp_path)
    env = {**(config.base_env or {}), "FAKE_EXIT_EARLY": "1"}
    fleet = Fleet(fake_config(tmp_path, base_env=env, data_dir=config.data_dir))

    with pytest.raises(FleetError) as info:
        fleet.start()

    assert "orchestrator exited with code 3" in str(info.value)
    assert "refusing to start" in str(info.value)
    assert [c.name for c in fleet.children] == ["temporal", "orchestrator"]
    assert all(gone(c.pid) for c in fleet.children)


def test_a_taken_port_fails_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        fleet = Fleet(fake_config(tmp_path, temporal_port=port))

        with pytest.raises(FleetError, match=f"cannot use 127.0.0.1:{port} for Temporal"):
            fleet.start()

    assert fleet.children == []


def test_a_taken_http_port_fails_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        fleet = Fleet(fake_config(tmp_path, http_address=f"127.0.0.1:{port}"))

        with pytest.raises(FleetError, match=f"cannot use 127.0.0.1:{port} for polyfleet HTTP"):
            fleet.start()

    assert fleet.children == []


def test_a_fleet_without_http_turns_it_off_and_has_no_dashboard(
    tmp_path: Path, stopped_fleets: list[Fleet]
) -> None:
    config = fake_config(tmp_path, http_address=None)
    env = {**(config.base_env or {}), "POLYFLEET_HTTP_ADDRESS": "127.0.0.1:1"}
    lines: list[str] = []
    fleet = Fleet(dataclasses.replace(config, base_env=env), report=lines.append)
    stopped_fleets.append(fleet)

    fleet.start()

    env = json.loads((config.data_dir / "orchestrator-env.json").read_text())
    assert env["POLYFLEET_HTTP_ENABLED"] == "false"
    assert fleet.dashboard_url is None
    assert not any("dashboard" in line for line in lines)


def test_the_http_address_defaults_to_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYFLEET_HTTP_ADDRESS", "127.0.0.1:7999")
    assert FleetConfig(data_dir=Path("d")).http_address == "127.0.0.1:7999"
    monkeypatch.setenv("POLYFLEET_HTTP_ENABLED", "false")
    assert FleetConfig(data_dir=Path("d")).http_address is None
    monkeypatch.delenv("POLYFLEET_HTTP_ADDRESS")
    monkeypatch.delenv("POLYFLEET_HTTP_ENABLED")
    assert FleetConfig(data_dir=Path("d")).http_address == "127.0.0.1:7280"


def test_a_child_that_ignores_sigterm_is_killed(
    tmp_path: Path, stopped_fleets: list[Fleet]
) -> None:
    fleet = Fleet(fake_config(tmp_path, runner_mode="ignore", stop_timeout=0.5))
    stopped_fleets.append(fleet)
    fleet.start()
    wait_until(lambda: any(fleet.config.data_dir.glob("runner-*.started")))

    fleet.stop()

    assert all(gone(c.pid) for c in fleet.children)


def test_check_reports_a_child_that_died(tmp_path: Path, stopped_fleets: list[Fleet]) -> None:
    fleet = Fleet(fake_config(tmp_path))
    stopped_fleets.append(fleet)
    fleet.start()
    runner = fleet.children[-1]

    os.kill(runner.pid, signal.SIGKILL)
    runner.popen.wait()

    with pytest.raises(FleetError, match="runner-1 exited"):
        fleet.check()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_children_die_when_the_parent_is_killed(tmp_path: Path) -> None:
    config = fake_config(tmp_path)
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from pathlib import Path
        from polyfleet.fleet import Fleet, FleetConfig
        config = FleetConfig(
            data_dir=Path({str(config.data_dir)!r}),
            temporal_port={config.temporal_port},
            temporal_ui_port={config.temporal_ui_port},
            api_address={config.api_address!r},
            http_address={config.http_address!r},
            temporal_executable=Path({str(config.temporal_executable)!r}),
            orchestrator_command={config.orchestrator_command!r},
            runner_command={config.runner_command!r},
        )
        fleet = Fleet(config)
        fleet.start()
        print(json.dumps([c.pid for c in fleet.children]), flush=True)
        time.sleep(600)
        """
    )
    # The context manager closes the stdout pipe too, once the parent is reaped.
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            pids = json.loads(parent.stdout.readline())
            assert len(pids) == 3
            assert not any(gone(pid) for pid in pids)

            parent.kill()
            parent.wait()

            wait_until(lambda: all(gone(pid) for pid in pids))
        finally:
            parent.kill()
            parent.wait()


# --- the dev and demo commands, in-process --------------------------------------------------


@pytest.fixture
def fake_children(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FleetConfig:
    """Make `polyfleet dev` / `demo` start the fakes instead of the real processes."""
    template = fake_config(tmp_path, runner_mode="slow")
    monkeypatch.setattr(
        dev,
        "FleetConfig",
        functools.partial(
            FleetConfig,
            temporal_executable=template.temporal_executable,
            orchestrator_command=template.orchestrator_command,
            runner_command=template.runner_command,
            base_env=template.base_env,
        ),
    )
    return template


def run_dev(children: FleetConfig, runners: int, interrupt: Callable[[], None]) -> int:
    """Run `polyfleet dev` on the fakes while ``interrupt`` signals it from a thread."""
    sender = threading.Thread(target=interrupt, daemon=True)
    sender.start()
    code = main(
        [
            *("--address", children.api_address, "dev", "--runners", str(runners)),
            *("--data-dir", str(children.data_dir), "--temporal-port", str(children.temporal_port)),
            *("--ui-port", str(children.temporal_ui_port)),
            *("--http-address", str(children.http_address)),
        ]
    )
    sender.join(timeout=5)
    return code


def test_dev_runs_until_sigint_and_a_second_sigint_is_absorbed(
    fake_children: FleetConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    data = fake_children.data_dir

    def interrupt_twice() -> None:
        wait_until(lambda: len(list(data.glob("runner-*.started"))) == 2, timeout=30)
        os.kill(os.getpid(), signal.SIGINT)
        # The slow fake runners take a second to stop; this lands in the middle of it.
        wait_until(lambda: (data / "stops.log").exists())
        os.kill(os.getpid(), signal.SIGINT)

    code = run_dev(fake_children, 2, interrupt_twice)

    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"Temporal UI    http://127.0.0.1:{fake_children.temporal_ui_port}" in out
    assert f"polyfleet API  {fake_children.api_address}" in out
    assert f"  Dashboard      http://{fake_children.http_address}/" in out.splitlines()
    assert str(data / "logs" / "orchestrator.log") in out
    assert "still stopping the fleet" in err
    assert (data / "stops.log").read_text().split() == STOP_ORDER
    assert not _processes_mentioning(str(data))


def test_dev_with_zero_runners_runs_temporal_and_the_orchestrator_only(
    fake_children: FleetConfig,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = fake_children.data_dir
    # `dev` checks its children only once the fleet is up and the banner is printed.
    up = threading.Event()
    check = Fleet.check

    def checked(fleet: Fleet) -> None:
        up.set()
        check(fleet)

    monkeypatch.setattr(Fleet, "check", checked)

    def interrupt_once_up() -> None:
        assert up.wait(timeout=30)
        os.kill(os.getpid(), signal.SIGINT)

    code = run_dev(fake_children, 0, interrupt_once_up)

    out, err = capsys.readouterr()
    assert code == 0, err
    assert "  runners        0" in out
    assert "No runners started: executions wait for a runner of your own" in out
    assert (data / "stops.log").read_text().split() == ["orchestrator", "temporal"]
    assert not list(data.glob("runner-*.started"))
    assert not (data / "logs" / "runner-1.log").exists()
    assert not _processes_mentioning(str(data))


def test_demo_applies_runs_and_stops_everything(
    fake_children: FleetConfig, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "demo"

    code = main(["demo", "--data-dir", str(data), "--message", "What is polyfleet? slow"])

    out, err = capsys.readouterr()
    assert code == 0, err + out
    assert "agent/assistant configured (version 1)" in out
    assert "● RUNNING" in out
    assert "● COMPLETED" in out
    assert "Final answer: polyfleet is a fleet of Temporal workers" in out
    assert not _processes_mentioning(str(data))


def test_demo_talks_twice_in_one_session_and_shows_the_tool_call(
    fake_children: FleetConfig, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "demo"

    code = main(["demo", "--data-dir", str(data)])

    out, err = capsys.readouterr()
    assert code == 0, err + out
    lines = out.splitlines()
    assert '$ polyfleet run agent assistant --message "What is polyfleet?" --follow' in lines
    assert (
        "$ polyfleet run agent assistant --session ses-1 --message \"What's the weather in "
        'Paris?" --follow'
    ) in lines
    # Two agent turns, then the example workflow.
    assert lines.count("● COMPLETED") == 3
    call = lines.index('→ tool get_weather({"city": "Paris"})')
    assert lines[call + 1].startswith("← get_weather: ")
    assert any(line.startswith("Final answer: The weather in Paris: ") for line in lines)
    assert sum(line.startswith("Usage: ") for line in lines) == 2
    assert not _processes_mentioning(str(data))


def test_demo_then_runs_the_example_workflow_against_a_local_catalog(
    fake_children: FleetConfig, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "demo"

    code = main(["demo", "--data-dir", str(data)])

    out, err = capsys.readouterr()
    assert code == 0, err + out
    workflow_part = out[out.index("Serving examples/http/ at http://127.0.0.1:") :]
    lines = workflow_part.splitlines()
    catalog = lines[0].rsplit(" ", 1)[1]
    assert lines[1:3] == [
        "$ polyfleet apply -f examples/workflows/order-flow.yaml",
        "workflow/order-flow configured (version 1)",
    ]
    run = next(line for line in lines if line.startswith("$ polyfleet run workflow "))
    assert run.startswith("$ polyfleet run workflow order-flow --follow --input '")
    order = json.loads(run.split("--input ", 1)[1].strip("'"))
    assert order == {**dev.DEMO_ORDER, "catalog": catalog}
    assert "execution/wex-1 created" in lines
    # Per-task progress, as `run workflow --follow` prints it.
    assert "▶ /do/1/ask (call:agent)" in lines
    assert "↳ /do/1/ask: agent execution aex-child-1" in lines
    assert "▶ /do/2/prices (call:http)" in lines
    assert lines.index("● COMPLETED") < lines.index(
        next(line for line in lines if line.startswith("Output: "))
    )
    # The catalog server is gone with the demo.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(catalog.rsplit(":", 1)[1])), timeout=1)


def test_demo_no_workflow_only_talks_to_the_agent(
    fake_children: FleetConfig, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["demo", "--data-dir", str(tmp_path / "demo"), "--no-workflow"])

    out, err = capsys.readouterr()
    assert code == 0, err + out
    assert out.splitlines().count("● COMPLETED") == 2
    assert "polyfleet run workflow" not in out
    assert "Serving" not in out


def test_demo_skips_the_workflow_when_the_manifest_lacks_its_agent(
    fake_children: FleetConfig, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    other = tmp_path / "helper.yaml"
    text = dev.default_demo_manifest().read_text(encoding="utf-8")
    other.write_text(text.replace("name: assistant", "name: helper"), encoding="utf-8")

    code = main(["demo", "--file", str(other), "--data-dir", str(tmp_path / "demo"), "-m", "hi"])

    out, err = capsys.readouterr()
    assert code == 0, err + out
    assert (
        f"Skipping the workflow order-flow: it calls the agent 'assistant', which {other} "
        "does not define."
    ) in out
    assert "$ polyfleet run agent helper --message" in out
    assert "polyfleet run workflow" not in out


def test_demo_reports_a_bad_manifest_without_starting_anything(
    fake_children: FleetConfig, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: polyfleet/v1\nkind: Agent\n", encoding="utf-8")

    code = main(["demo", "--file", str(bad), "--data-dir", str(tmp_path / "demo")])

    assert code == 2
    assert "metadata: field required" in capsys.readouterr().err
    assert not (tmp_path / "demo" / "logs").exists()


def _processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line or environment mentions text."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid() or gone(int(proc.name)):
            continue
        for part in ("cmdline", "environ"):
            try:
                if text.encode() in (proc / part).read_bytes():
                    found.append(int(proc.name))
                    break
            except OSError:
                continue
    return found


def test_children_are_started_without_a_preexec_fn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a preexec_fn, Python fork()s instead of vfork()ing, so gRPC's fork handlers run in
    # the child between fork and exec; with gRPC live in the parent they crashed 5 of 300 such
    # children here (SIGSEGV or SIGABRT on an epoll fd that close_fds had closed), which is how
    # a fleet test once lost its fake orchestrator at random. The fleet must never use one.
    seen: list[dict[str, Any]] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        seen.append(kwargs)
        return real_popen(*args, **kwargs)

    monkeypatch.setattr("polyfleet.fleet.subprocess.Popen", recording_popen)
    config = fake_config(tmp_path)
    config.log_dir.mkdir(parents=True)
    child = Fleet(config)._spawn("echo", [sys.executable, "-c", "print('up')"], dict(os.environ))

    assert child.popen.wait(timeout=30) == 0
    assert "up" in child.log_path.read_text()
    assert [kwargs.get("preexec_fn") for kwargs in seen] == [None]


# --- a secure fleet: TLS and bearer tokens ----------------------------------------------------


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_a_secure_fleet_gives_the_orchestrator_tls_and_tokens_and_runners_their_token(
    tmp_path: Path, stopped_fleets: list[Fleet]
) -> None:
    credentials = DevCredentials.ensure(tmp_path / "credentials")
    config = fake_config(tmp_path, credentials=credentials)
    inherited = {
        **(config.base_env or {}),
        "POLYFLEET_API_TOKEN": "pft_of-another-api",
        "POLYFLEET_API_TLS_CLIENT_CERT": "/elsewhere/client.pem",
        "POLYFLEET_AUTH_OIDC_ISSUER": "https://elsewhere.example",
    }
    fleet = Fleet(dataclasses.replace(config, base_env=inherited))
    stopped_fleets.append(fleet)

    # The fake orchestrator serves TLS only and wants a token: health must still pass.
    fleet.start()

    env = json.loads((config.data_dir / "orchestrator-env.json").read_text())
    for name, value in credentials.server_env().items():
        assert env[name] == value
    assert not {"POLYFLEET_API_TOKEN", "POLYFLEET_API_TLS_CLIENT_CERT"} & env.keys()
    assert "POLYFLEET_AUTH_OIDC_ISSUER" not in env
    runner = next(c for c in fleet.children if c.name == "runner-1")
    wait_until(lambda: bool(list(config.data_dir.glob("runner-*.started"))))
    runner_env = _environ(runner.pid)
    assert runner_env["POLYFLEET_API_TLS"] == "true"
    assert runner_env["POLYFLEET_API_TLS_ROOT_CERT"] == str(credentials.ca_cert)
    assert runner_env["POLYFLEET_API_TOKEN"] == credentials.tokens[Role.RUNNER]
    assert "POLYFLEET_API_TLS_CERT" not in runner_env
    assert "POLYFLEET_AUTH_TOKENS_FILE" not in runner_env


def test_a_plain_fleet_has_no_tls_or_tokens(tmp_path: Path, stopped_fleets: list[Fleet]) -> None:
    fleet = Fleet(fake_config(tmp_path))
    stopped_fleets.append(fleet)

    fleet.start()

    env = json.loads((fleet.config.data_dir / "orchestrator-env.json").read_text())
    assert "POLYFLEET_API_TLS_CERT" not in env
    assert "POLYFLEET_AUTH_TOKENS_FILE" not in env


def test_dev_secure_serves_tls_and_tokens_and_prints_how_to_connect(
    fake_children: FleetConfig, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = fake_children.data_dir
    up = threading.Event()
    check = Fleet.check

    def checked(fleet: Fleet) -> None:
        up.set()
        check(fleet)

    monkeypatch.setattr(Fleet, "check", checked)

    def interrupt_once_up() -> None:
        assert up.wait(timeout=30)
        os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt_once_up, daemon=True)
    sender.start()
    code = main(
        [
            *("--address", fake_children.api_address, "dev", "--secure", "--runners", "0"),
            *("--data-dir", str(data), "--temporal-port", str(fake_children.temporal_port)),
            *("--ui-port", str(fake_children.temporal_ui_port)),
            *("--http-address", str(fake_children.http_address)),
        ]
    )
    sender.join(timeout=5)

    out, err = capsys.readouterr()
    assert code == 0, err
    credentials = DevCredentials.ensure(data / "credentials")
    # HTTP is served with the API's certificate, so the dashboard's URL is https.
    assert f"  Dashboard      https://{fake_children.http_address}/" in out.splitlines()
    assert (
        f"The dashboard asks for a token: paste the one in {credentials.token_path(Role.ADMIN)}"
        in out
    )
    env = json.loads((data / "orchestrator-env.json").read_text())
    assert env["POLYFLEET_API_TLS_CERT"] == str(credentials.server_cert)
    assert env["POLYFLEET_AUTH_TOKENS_FILE"] == str(credentials.tokens_file)
    admin = credentials.token_path(Role.ADMIN)
    assert (
        f"  export POLYFLEET_API_TLS_ROOT_CERT={credentials.ca_cert} "
        f'POLYFLEET_API_TOKEN="$(cat {admin})"'
    ) in out.splitlines()
    runner = credentials.token_path(Role.RUNNER)
    assert f'POLYFLEET_API_TOKEN="$(cat {runner})"' in out
    # The tokens themselves never reach the output.
    assert not any(token in out + err for token in credentials.tokens.values())
    assert not _processes_mentioning(str(data))


def test_demo_runs_its_fleet_with_tls_and_tokens(
    fake_children: FleetConfig, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "demo"

    code = main(["demo", "--data-dir", str(data), "--no-workflow", "-m", "hi"])

    out, err = capsys.readouterr()
    assert code == 0, err + out
    credentials = DevCredentials.ensure(data / "credentials")
    env = json.loads((fake_children.data_dir / "orchestrator-env.json").read_text())
    assert env["POLYFLEET_API_TLS_CERT"] == str(credentials.server_cert)
    assert env["POLYFLEET_AUTH_TOKENS_FILE"] == str(credentials.tokens_file)
    assert not any(token in out + err for token in credentials.tokens.values())
    # Its own free port, beside a `polyfleet dev` on the default one.
    http_address = env["POLYFLEET_HTTP_ADDRESS"]
    assert http_address != "127.0.0.1:7280"
    assert f"  Dashboard      https://{http_address}/" in out.splitlines()
    assert env["POLYFLEET_HTTP_TEMPORAL_UI_URL"].startswith("http://127.0.0.1:")
