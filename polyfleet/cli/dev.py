"""``polyfleet dev`` and ``polyfleet demo``: run the whole system locally.

Both start a :class:`polyfleet.fleet.Fleet` from the main thread and own the signal
handling: the first SIGINT/SIGTERM ends the wait (or the demo) and every later one is
absorbed while the fleet stops, so a second Ctrl-C never leaves processes behind.

The demo talks to the example agent, then runs the example workflow ``order-flow``, whose
``call: http`` task fetches ``examples/http/prices.json`` from a static file server the
demo runs on 127.0.0.1 for the purpose: nothing leaves the machine.

``dev --secure`` and every ``demo`` serve the API with TLS and bearer tokens from
:class:`polyfleet.dev_credentials.DevCredentials` in ``<data dir>/credentials``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import shlex
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any, TextIO, TypeVar

from polyfleet.cli import api, follow
from polyfleet.cli.api import api_address
from polyfleet.cli.errors import (
    EXIT_ERROR,
    EXIT_EXECUTION_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliError,
    exit_code_for,
    print_error,
)
from polyfleet.cli.manifests import load_manifest_files, split_resources
from polyfleet.cli.output import Console
from polyfleet.cli.progress import ProgressPrinter
from polyfleet.client import Client
from polyfleet.config import DEFAULT_API_ADDRESS, ApiSettings, HttpSettings, TaskQueueSettings
from polyfleet.dev_credentials import DevCredentials
from polyfleet.fleet import Fleet, FleetConfig, FleetError, free_port
from polyfleet.roles import Role
from polyfleet.v1 import agent_pb2, common_pb2, workflow_pb2

DEFAULT_DEV_DATA_DIR = Path(".polyfleet/dev")
DEMO_AGENT = "assistant"
DEMO_MESSAGE = "What is polyfleet?"
# The demo's conversation: one plain answer, then one that calls the example MCP tool.
DEMO_MESSAGES = (DEMO_MESSAGE, "What's the weather in Paris?")
# The example workflow `polyfleet dev` suggests (examples/workflows/), and an input for it.
DEV_WORKFLOW = "order-flow"
DEV_WORKFLOW_INPUT = '{"customer": "Ada", "items": [{"sku": "book", "qty": 2}]}'
# The demo's order for that workflow; the demo adds the `catalog` URL its HTTP server has.
DEMO_ORDER: Mapping[str, Any] = {
    "customer": "Ada",
    "items": [{"sku": "book", "qty": 2}, {"sku": "pen", "qty": 5}],
}
# The demo's HTTP server listens here only.
LOOPBACK = "127.0.0.1"
# The TLS certificates and tokens of a secure fleet, under its data directory.
CREDENTIALS_DIR = "credentials"
_CHECK_INTERVAL = 0.5

_T = TypeVar("_T")


def examples_dir() -> Path:
    """Return the ``examples/`` directory: the installed package's copy, else the source tree's.

    A wheel carries the top-level ``examples/`` as ``polyfleet/examples`` (a hatch
    force-include), so ``polyfleet demo`` works from an installed package; a source checkout,
    editable installs included, has no such copy and uses the one beside the package.
    """
    packaged = resources.files("polyfleet") / "examples"
    # Only a directory on disk will do: the demo hands these paths to child processes.
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "examples"


def default_demo_manifest() -> Path:
    """Return the manifest the demo applies: ``examples/agents/assistant.yaml``."""
    return examples_dir() / "agents" / f"{DEMO_AGENT}.yaml"


def demo_workflow_manifest() -> Path:
    """Return the workflow the demo runs: ``examples/workflows/order-flow.yaml``."""
    return examples_dir() / "workflows" / f"{DEV_WORKFLOW}.yaml"


def demo_http_dir() -> Path:
    """Return the directory the demo serves over HTTP: ``examples/http/``."""
    return examples_dir() / "http"


class _QuietFileHandler(SimpleHTTPRequestHandler):
    """Serves files without writing an access log line per request to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        """Drop the access log: the workflow's task lines show each request already."""


@contextlib.contextmanager
def serve_directory(directory: Path, host: str = LOOPBACK) -> Iterator[str]:
    """Serve a directory's files over HTTP on a free port, from a daemon thread.

    Args:
        directory: The files to serve (read only; directories are listed).
        host: The interface to listen on; only the loopback one by default.

    Yields:
        The server's base URL, e.g. ``http://127.0.0.1:8123``; the server is shut down
        and its socket closed when the block ends, however it ends.

    """
    handler = functools.partial(_QuietFileHandler, directory=str(directory))
    server = ThreadingHTTPServer((host, 0), handler)
    try:
        thread = threading.Thread(
            target=server.serve_forever, name="polyfleet-demo-http", daemon=True
        )
        thread.start()
        try:
            yield f"http://{host}:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join()
    finally:
        server.server_close()


def _bypass_proxy_for_loopback(env: Mapping[str, str]) -> dict[str, str]:
    # With HTTP_PROXY set, httpx in the runner would send the request for the demo's
    # catalog (127.0.0.1) to the proxy: keep loopback traffic local.
    result = dict(env)
    for key in ("NO_PROXY", "no_proxy"):
        hosts = [host for host in result.get(key, "").split(",") if host.strip()]
        result[key] = ",".join([*hosts, LOOPBACK, "localhost"])
    return result


def _shown_path(path: Path) -> str:
    """A path as the user would type it: relative to the working directory if inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class _SignalGuard:
    """Turns SIGINT/SIGTERM into KeyboardInterrupt until :meth:`absorb` is called."""

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._absorbing = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self._handle) for sig in self._SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def absorb(self) -> None:
        """From now on, a signal only says that stopping is under way."""
        self._absorbing = True

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self._absorbing:
            print("still stopping the fleet, please wait...", file=self._err, flush=True)
            return
        # SIGTERM takes the same orderly path as Ctrl-C.
        raise KeyboardInterrupt(signal.Signals(signum).name)


def _say(stream: TextIO) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    return say


def _banner(fleet: Fleet) -> list[str]:
    config = fleet.config
    dashboard = [f"  Dashboard      {fleet.dashboard_url}"] if fleet.dashboard_url else []
    return [
        "polyfleet fleet is up:",
        f"  Temporal       {config.temporal_address} (namespace {config.namespace})",
        f"  Temporal UI    {config.temporal_ui_url}",
        f"  polyfleet API  {config.api_address}"
        + (" (TLS, bearer tokens)" if config.credentials else " (plaintext, no authentication)"),
        *dashboard,
        f"  runners        {config.runners}",
        f"  data           {config.data_dir}",
        f"  logs           {config.log_dir}",
    ]


# --- dev ------------------------------------------------------------------------------------


def cmd_dev(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet dev``: run a local fleet until SIGINT/SIGTERM."""
    data_dir = Path(args.data_dir)
    config = FleetConfig(
        data_dir=data_dir,
        runners=args.runners,
        temporal_port=args.temporal_port,
        temporal_ui_port=args.ui_port,
        api_address=api_address(args),
        credentials=_credentials(data_dir) if args.secure else None,
    )
    if args.http_address:
        # Otherwise POLYFLEET_HTTP_ADDRESS or 127.0.0.1:7280: a fixed port, so the dashboard's
        # URL survives restarts; taken, it fails up front like the API's port.
        config = dataclasses.replace(config, http_address=args.http_address)
    say = _say(console.out)
    fleet = Fleet(config, report=say)
    guard = _SignalGuard(console.err)
    code = EXIT_OK
    with guard.installed():
        try:
            fleet.start()
            lines = [*_banner(fleet), "", *_connect_tips(fleet), *_dev_tips(config)]
            for line in [*lines, "Press Ctrl-C to stop."]:
                say(line)
            while True:
                fleet.check()
                time.sleep(_CHECK_INTERVAL)
        except KeyboardInterrupt:
            say("stopping the fleet...")
        except FleetError as exc:
            print_error(CliError(str(exc)), console.err)
            code = EXIT_EXECUTION_FAILED
        finally:
            guard.absorb()
            fleet.stop()
    return code


def _credentials(data_dir: Path) -> DevCredentials:
    directory = data_dir / CREDENTIALS_DIR
    try:
        return DevCredentials.ensure(directory)
    except OSError as exc:
        raise CliError(
            f"cannot write the dev credentials in {directory}: {exc.strerror or exc}"
        ) from None


def _connect_tips(fleet: Fleet) -> list[str]:
    """How a shell reaches a secure fleet; the token's file is named, never the token."""
    credentials = fleet.config.credentials
    if credentials is None:
        return []
    root = shlex.quote(str(credentials.ca_cert))
    admin = shlex.quote(str(credentials.token_path(Role.ADMIN)))
    dashboard = (
        [
            f"The dashboard asks for a token: paste the one in {admin}",
            f"(browsers warn about its certificate unless they trust the dev CA {root}).",
        ]
        if fleet.dashboard_url
        else []
    )
    return [
        f"TLS and bearer tokens are on (dev credentials in {credentials.directory}; the",
        "tokens are stored there in clear text, for this machine only). Connect as admin with:",
        f'  export POLYFLEET_API_TLS_ROOT_CERT={root} POLYFLEET_API_TOKEN="$(cat {admin})"',
        *dashboard,
        "",
    ]


def _client_settings(config: FleetConfig, role: Role) -> ApiSettings | None:
    """The CLI's own connection to its fleet: TLS with the dev CA and ``role``'s token."""
    credentials = config.credentials
    if credentials is None:
        return None
    # The fleet's credentials, not whatever client certificate the environment names.
    return ApiSettings(
        api_address=config.api_address,
        api_tls_client_cert=None,
        api_tls_client_key=None,
        api_tls_server_name="",
        **credentials.client_fields(role),
    )


def _dev_tips(config: FleetConfig) -> list[str]:
    address = (
        "" if config.api_address == DEFAULT_API_ADDRESS else f"--address {config.api_address} "
    )
    return [
        *_no_runner_tip(config),
        "Try:",
        f"  polyfleet {address}apply -f examples/agents/assistant.yaml",
        f'  polyfleet {address}run agent assistant --message "{DEMO_MESSAGE}" --follow',
        f'  polyfleet {address}run agent assistant --message "{DEMO_MESSAGES[1]}" --wait',
        f"  polyfleet {address}apply -f examples/workflows/",
        f"  polyfleet {address}run workflow {DEV_WORKFLOW} --input '{DEV_WORKFLOW_INPUT}' --follow",
        "",
    ]


def _no_runner_tip(config: FleetConfig) -> list[str]:
    if config.runners:
        return []
    queues = TaskQueueSettings()
    secure = []
    if config.credentials is not None:
        root = shlex.quote(str(config.credentials.ca_cert))
        token = shlex.quote(str(config.credentials.token_path(Role.RUNNER)))
        secure = [f'  POLYFLEET_API_TLS_ROOT_CERT={root} POLYFLEET_API_TOKEN="$(cat {token})"']
    return [
        "No runners started: executions wait for a runner of your own (docs/contract.md) on",
        f"  {queues.agent_execution_runner_task_queue} (agents) and "
        f"{queues.workflow_execution_runner_task_queue} (workflows), with",
        f"  TEMPORAL_ADDRESS={config.temporal_address} "
        f"TEMPORAL_NAMESPACE={config.namespace} POLYFLEET_API_ADDRESS={config.api_address}",
        *secure,
        "",
    ]


# --- demo -----------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    """``polyfleet demo``: start a throwaway fleet, talk to the assistant, stop everything."""
    manifest = Path(args.file) if args.file else default_demo_manifest()
    agents, _ = split_resources(load_manifest_files([str(manifest)]))
    if not agents:
        raise CliError(f"{manifest}: holds no Agent manifest to talk to")
    agent_name = args.agent or _pick_agent(agents)
    workflow = None if args.no_workflow else _demo_workflow(agents, manifest, console.out)
    own_dir = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="polyfleet-demo-")) if own_dir else Path(args.data_dir)
    config = FleetConfig(
        data_dir=data_dir,
        runners=1,
        # Free ports, so the demo runs next to a `polyfleet dev` or another demo.
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        api_address=f"127.0.0.1:{free_port()}",
        http_address=f"127.0.0.1:{free_port()}" if HttpSettings().enabled else None,
        # The demo shows the fleet as it should run: TLS and bearer tokens.
        credentials=_credentials(data_dir),
    )
    loopback_env = _bypass_proxy_for_loopback(config.base_env or os.environ)
    config = dataclasses.replace(config, base_env=loopback_env)
    say = _say(console.out)
    fleet = Fleet(config, report=say)
    guard = _SignalGuard(console.err)
    code = EXIT_ERROR
    with guard.installed():
        try:
            say(f"Starting a demo fleet in {data_dir}")
            fleet.start()
            for line in _banner(fleet):
                say(line)
            messages = args.messages or list(DEMO_MESSAGES)
            run = _demo(fleet, agents, agent_name, messages, console.out, workflow)
            code = asyncio.run(_within(run, args.timeout, fleet))
        except KeyboardInterrupt:
            print("interrupted", file=console.err)
            code = EXIT_INTERRUPTED
        except FleetError as exc:
            print_error(CliError(str(exc)), console.err)
            code = EXIT_EXECUTION_FAILED
        except CliError as exc:
            print_error(exc, console.err)
            code = exc.exit_code
        finally:
            guard.absorb()
            say("Stopping the fleet...")
            fleet.stop()
    if code == EXIT_OK and own_dir:
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        say(f"Logs are kept in {config.log_dir}")
    return code


def _pick_agent(agents: Sequence[agent_pb2.Agent]) -> str:
    names = [agent.name for agent in agents]
    return DEMO_AGENT if DEMO_AGENT in names else names[0]


def _demo_workflow(
    agents: Sequence[agent_pb2.Agent], manifest: Path, out: TextIO
) -> workflow_pb2.Workflow | None:
    """Load the example workflow, or None when the agents lack the one it calls."""
    if DEMO_AGENT not in {agent.name for agent in agents}:
        print(
            f"Skipping the workflow {DEV_WORKFLOW}: it calls the agent {DEMO_AGENT!r}, "
            f"which {_shown_path(manifest)} does not define.",
            file=out,
        )
        return None
    path = demo_workflow_manifest()
    _, workflows = split_resources(load_manifest_files([str(path)]))
    found = [workflow for workflow in workflows if workflow.name == DEV_WORKFLOW]
    if not found:
        raise CliError(f"{path}: holds no Workflow named {DEV_WORKFLOW!r}")
    return found[0]


async def _demo(
    fleet: Fleet,
    agents: Sequence[agent_pb2.Agent],
    agent_name: str,
    messages: Sequence[str],
    out: TextIO,
    workflow: workflow_pb2.Workflow | None = None,
) -> int:
    settings = _client_settings(fleet.config, Role.ADMIN)
    async with api.connect(fleet.config.api_address, settings) as client:
        for agent in agents:
            stored = await client.agents.apply(agent)
            print(f"agent/{stored.name} configured (version {stored.version})", file=out)
        session = ""
        for message in messages:
            # Every turn after the first continues the first turn's session (its thread).
            flag = f" --session {session}" if session else ""
            print(
                f'\n$ polyfleet run agent {agent_name}{flag} --message "{message}" --follow',
                file=out,
            )
            execution = await client.agent_executions.create(
                agent_name, message, session_id=session
            )
            print(f"execution/{execution.id} created", file=out, flush=True)
            final = await follow.watch_execution(
                client.agent_executions, execution.id, ProgressPrinter(out)
            )
            if final.status.phase != common_pb2.EXECUTION_PHASE_COMPLETED:
                return exit_code_for(final)
            session = session or final.session_id or execution.session_id
        if workflow is not None:
            return await _demo_run_workflow(client, workflow, out)
    return EXIT_OK


async def _demo_run_workflow(client: Client, workflow: workflow_pb2.Workflow, out: TextIO) -> int:
    # The catalog the workflow's `call: http` task reads, on the loopback interface only.
    http_dir = demo_http_dir()
    with serve_directory(http_dir) as catalog:
        print(f"\nServing {_shown_path(http_dir)}/ at {catalog}", file=out)
        print(f"$ polyfleet apply -f {_shown_path(demo_workflow_manifest())}", file=out)
        stored = await client.workflows.apply(workflow)
        print(f"workflow/{stored.name} configured (version {stored.version})", file=out)
        workflow_input = {**DEMO_ORDER, "catalog": catalog}
        text = json.dumps(workflow_input, ensure_ascii=False)
        print(f"\n$ polyfleet run workflow {stored.name} --follow --input '{text}'", file=out)
        execution = await client.workflow_executions.create(stored.name, workflow_input)
        print(f"execution/{execution.id} created", file=out, flush=True)
        final = await follow.watch_execution(
            client.workflow_executions, execution.id, ProgressPrinter(out)
        )
    return exit_code_for(final)


async def _within(work: Awaitable[_T], limit_seconds: float, fleet: Fleet) -> _T:
    # A child that crashes mid-demo would otherwise leave the execution waiting for a
    # runner until Temporal's schedule-to-start timeout; fail fast with its log instead.
    task = asyncio.ensure_future(work)
    deadline = asyncio.get_running_loop().time() + limit_seconds
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=_CHECK_INTERVAL)
            if done:
                return task.result()
            fleet.check()
            if asyncio.get_running_loop().time() > deadline:
                raise CliError(
                    f"the demo did not finish within {limit_seconds:g} s",
                    exit_code=EXIT_EXECUTION_FAILED,
                )
    finally:
        if not task.done():
            task.cancel()
            # Only the cancellation is expected here; any other outcome was already lost.
            await asyncio.gather(task, return_exceptions=True)
