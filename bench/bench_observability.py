"""Benchmark: what metrics and tracing cost, in CPU per execution, against a run without them.

Two fleets, observability off and on, each an orchestrator process and one runner process:

- **off**: no `/metrics` endpoint (``POLYFLEET_METRICS_PORT=0``) and no OTLP endpoint, so
  neither metrics nor traces are exported;
- **on**: the orchestrator and the runner each serve `/metrics` (``POLYFLEET_METRICS_PORT``),
  scraped every ``BENCH_OBS_SCRAPE_INTERVAL`` seconds (default 15), and export metrics and
  traces over OTLP (``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``,
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) to a receiver in this process that counts and
  discards.

``BENCH_OBS_MODE`` says how the two are run:

- ``paired`` (the default): both fleets at the same time on one Temporal dev server (in
  memory), each in its own namespace with its own task queues and data directory, driven by
  the same load (every execution is created on both sides at once). Whatever else loads the
  machine meanwhile weighs on both sides alike, which sequential runs cannot promise: on a
  shared machine the same "off" fleet measured 74-105 ms per execution from one run to the
  next, more than the difference to resolve.
- ``sequential``: one fleet after the other, each with its own dev server, alternating which
  runs first from one round to the next.

Each fleet runs ``BENCH_OBS_EXECUTIONS`` agent executions of a no-op agent (the offline
``scripted`` model: no network) after a warm-up; the figure is each process's user + system
CPU time (psutil) from the first create to its fleet's last terminal state, divided by the
executions. ``BENCH_OBS_ROUNDS`` (default 2) repeats the measurement (paired: that many paired
runs); each round's ratio is reported with the pooled one. ``BENCH_OBS_PARTS`` (``metrics``:
`/metrics` and OTLP metrics; ``tracing``: OTLP traces only; or both, the default) says what
"on" turns on, to tell the two costs apart. Run with ``make bench``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import (  # type: ignore[import-untyped, unused-ignore]
    health_pb2,
    health_pb2_grpc,
)

from bench.harness import noop_agent, stop_process
from bench.report import cpu_seconds, write_section
from polyfleet.client import Client
from polyfleet.client.executions import AgentExecutions
from polyfleet.fleet import find_temporal, free_port
from polyfleet.v1 import agent_execution_pb2, common_pb2
from tests.otlp import OtlpReceiver

EXECUTIONS = int(os.environ.get("BENCH_OBS_EXECUTIONS", "200"))
ROUNDS = int(os.environ.get("BENCH_OBS_ROUNDS", "2"))
MODE = os.environ.get("BENCH_OBS_MODE", "paired")
# What "on" turns on, to tell the two costs apart: metrics, tracing or both (the default).
PARTS = frozenset(os.environ.get("BENCH_OBS_PARTS", "metrics,tracing").split(","))
WARMUP = 10
CREATE_CONCURRENCY = 20
# Prometheus' scrape interval: 15 s is its example configuration's and a common setting (its
# own default is 60 s); every scrape formats ~700 series, so a shorter one costs more per second.
SCRAPE_INTERVAL = float(os.environ.get("BENCH_OBS_SCRAPE_INTERVAL", "15"))
WAIT_TIMEOUT = 600.0
STARTUP_TIMEOUT = 90.0
RUNNER_STOP_TIMEOUT = 60.0
TARGET = 0.10
AGENT = "bench-noop"
WARM_AGENT = "bench-warmup"
PROCESSES = ("orchestrator", "runner")
HOST = "127.0.0.1"
QUEUE_VARIABLES = (
    "TEMPORAL_AGENT_EXECUTION_ORCHESTRATOR_TASK_QUEUE",
    "TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE",
    "TEMPORAL_WORKFLOW_EXECUTION_ORCHESTRATOR_TASK_QUEUE",
    "TEMPORAL_WORKFLOW_EXECUTION_RUNNER_TASK_QUEUE",
)


@dataclass
class Measured:
    """CPU seconds per process and executions, summed over the rounds of one mode."""

    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    executions: int = 0
    completed: int = 0
    wall: float = 0.0
    scrapes: int = 0
    scrape_bytes: int = 0

    def total_ms(self) -> float:
        """CPU milliseconds of all measured processes so far."""
        return sum(self.cpu[name] for name in PROCESSES) * 1000

    def per_execution_ms(self, name: str) -> float:
        """CPU milliseconds of process ``name`` per execution."""
        return self.cpu[name] * 1000 / max(self.executions, 1)


async def _scrape(urls: list[str], measured: Measured, stop: asyncio.Event) -> None:
    """Read every `/metrics` endpoint each SCRAPE_INTERVAL, as Prometheus would."""

    def once(url: str) -> int:
        with urllib.request.urlopen(url, timeout=10) as response:
            return len(response.read())

    while not stop.is_set():
        for url in urls:
            measured.scrape_bytes += await asyncio.to_thread(once, url)
            measured.scrapes += 1
        try:
            await asyncio.wait_for(stop.wait(), SCRAPE_INTERVAL)
        except TimeoutError:
            pass


@dataclass
class Side:
    """One fleet of a round: an orchestrator and a runner, observability ``on`` or off."""

    on: bool
    measured: Measured
    data_dir: Path
    api_address: str = field(default_factory=lambda: f"{HOST}:{free_port()}")
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    metrics_ports: tuple[int, int] = (0, 0)

    @property
    def name(self) -> str:
        """``on`` or ``off``: also its namespace's and its queues' suffix."""
        return "on" if self.on else "off"

    @property
    def metrics(self) -> bool:
        """Whether this side exports metrics (and is scraped)."""
        return self.on and "metrics" in PARTS

    def urls(self) -> list[str]:
        """The `/metrics` URLs to scrape; none when metrics are off."""
        return [f"http://{HOST}:{port}/metrics" for port in self.metrics_ports if port]

    def pids(self) -> dict[str, int]:
        """The measured processes by name."""
        return {name: self.processes[name].pid for name in PROCESSES}


def _environments(side: Side, temporal_address: str, otlp: str) -> tuple[dict[str, str], ...]:
    """The orchestrator's and the runner's environment of ``side``."""
    if side.metrics:
        side.metrics_ports = (free_port(), free_port())
    # Each part has its own OTLP variable, so "tracing" alone exports no metrics and
    # "metrics" alone no spans (OTEL_EXPORTER_OTLP_ENDPOINT would turn on both).
    observability = {
        variable: otlp
        for part, variable in (
            ("metrics", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
            ("tracing", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        )
        if side.on and part in PARTS
    }
    # Inherited observability, Temporal and HTTP settings would make the sides differ or
    # collide (two orchestrators cannot both serve the default HTTP port).
    common = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "POLYFLEET_METRICS_", "POLYFLEET_HTTP_", "TEMPORAL_"))
    }
    common.update(
        observability,
        TEMPORAL_ADDRESS=temporal_address,
        TEMPORAL_NAMESPACE=f"bench-{side.name}",
        POLYFLEET_API_ADDRESS=side.api_address,
        POLYFLEET_METRICS_ADDRESS=HOST,
        PYTHONUNBUFFERED="1",
    )
    # Namespaces keep the sides apart already; queues of their own say so in Temporal's UI.
    common.update(
        {variable: f"bench-{side.name}-{variable.lower()}" for variable in QUEUE_VARIABLES}
    )
    orchestrator = {
        **common,
        "POLYFLEET_DATA_DIR": str(side.data_dir / "orchestrator"),
        "POLYFLEET_HTTP_ENABLED": "false",
        "POLYFLEET_METRICS_PORT": str(side.metrics_ports[0]),
        "POLYFLEET_LOG_LEVEL": "WARNING",
    }
    runner = {
        **common,
        "POLYFLEET_METRICS_PORT": str(side.metrics_ports[1]),
        "POLYFLEET_LOG_LEVEL": "INFO",  # its "runner polling" line says it is ready
    }
    return orchestrator, runner


def _spawn(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in a session of its own, its output appended to ``log_path``."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_until(
    ready: Callable[[], bool], what: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    """Poll ``ready`` until it holds; raise if ``process`` exits or STARTUP_TIMEOUT passes."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not ready():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"the benchmark's {what} did not start; see {log}")
        time.sleep(0.1)


def _port_open(port: int) -> bool:
    with suppress(OSError), socket.create_connection((HOST, port), timeout=1):
        return True
    return False


def _serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        with suppress(grpc.RpcError):
            response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
            return bool(response.status == health_pb2.HealthCheckResponse.SERVING)
    return False


@contextmanager
def _cluster(tmp: Path, sides: list[Side], otlp: str) -> Iterator[None]:
    """One Temporal dev server (in memory) with a namespace per side; each side's processes."""
    temporal_port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    temporal_log = tmp / "temporal.log"  # appended to: sequential rounds start two
    namespaces = [x for side in sides for x in ("--namespace", f"bench-{side.name}")]
    temporal = _spawn(
        [
            str(find_temporal()),
            *("server", "start-dev", "--ip", HOST, "--port", str(temporal_port)),
            *("--ui-port", str(free_port()), "--log-level", "warn", *namespaces),
            # Task-queue priorities need the new matcher, as in `polyfleet dev`.
            *("--dynamic-config-value", "matching.useNewMatcher=true"),
        ],
        dict(os.environ),
        temporal_log,
    )
    try:
        _wait_until(lambda: _port_open(temporal_port), "Temporal", temporal, temporal_log)
        for side in sides:
            side.data_dir.mkdir(parents=True)
            orchestrator_env, runner_env = _environments(side, f"{HOST}:{temporal_port}", otlp)
            log = side.data_dir / "orchestrator.log"
            process = _spawn([sys.executable, "-m", "orchestrator"], orchestrator_env, log)
            side.processes["orchestrator"] = process
            address = side.api_address
            _wait_until(lambda: _serving(address), "orchestrator", process, log)  # noqa: B023 - waited for here
            log = side.data_dir / "runner.log"
            process = _spawn([sys.executable, "-m", "runner"], runner_env, log)
            side.processes["runner"] = process
            _wait_until(lambda: b"runner polling" in log.read_bytes(), "runner", process, log)  # noqa: B023 - waited for here
        yield
    finally:
        for side in sides:
            if "runner" in side.processes:
                _stop_runner(side.processes["runner"], side.data_dir / "runner.log")
        for process in [
            s.processes["orchestrator"] for s in sides if "orchestrator" in s.processes
        ]:
            stop_process(process)
        stop_process(temporal)


async def _warm(client: Client) -> None:
    """Apply the agents and run the warm-up executions, one at a time."""
    await client.agents.apply(noop_agent(WARM_AGENT))
    await client.agents.apply(noop_agent(AGENT))
    for _ in range(WARMUP):  # imports, caches, first workflow tasks: not measured
        await client.agent_executions.execute(AgentExecutions.request(WARM_AGENT, "warm"))


async def _open(client: Client) -> bool:
    """Whether any measured execution is still PENDING or RUNNING."""
    # One tiny page per open phase: the benchmark's own load stays small.
    for phase in (common_pb2.EXECUTION_PHASE_PENDING, common_pb2.EXECUTION_PHASE_RUNNING):
        request = agent_execution_pb2.ListAgentExecutionsRequest(
            agent=AGENT, phase=phase, page_size=1
        )
        if (await client.agent_executions.list(request)).executions:
            return True
    return False


async def _drive(sides: list[Side]) -> dict[str, float]:
    """Create the executions on every side at once; CPU ms per execution of each side.

    Each execution is created on all sides together, so the sides see the same load at the
    same moments; each side's measurement ends when its own last execution is terminal.
    """
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(await Client.connect(s.api_address)) for s in sides
        ]
        await asyncio.gather(*(_warm(client) for client in clients))
        gate = asyncio.Semaphore(CREATE_CONCURRENCY)
        result: dict[str, float] = {}

        async def create() -> None:
            async with gate:
                await asyncio.gather(*(c.agent_executions.create(AGENT, "go") for c in clients))

        async def finish(side: Side, client: Client, before: dict[str, float]) -> None:
            while await _open(client):
                if time.perf_counter() - started > WAIT_TIMEOUT:
                    break
                await asyncio.sleep(0.5)
            after = cpu_seconds(side.pids())
            side.measured.wall += time.perf_counter() - started
            for name in PROCESSES:
                side.measured.cpu[name] += after[name] - before[name]
            result[side.name] = sum(after[n] - before[n] for n in PROCESSES) * 1000 / EXECUTIONS
            stop[side.name].set()

        stop = {side.name: asyncio.Event() for side in sides}
        scrapers = [
            asyncio.create_task(_scrape(side.urls(), side.measured, stop[side.name]))
            for side in sides
            if side.urls()
        ]
        before = {side.name: cpu_seconds(side.pids()) for side in sides}
        started = time.perf_counter()
        await asyncio.gather(*(create() for _ in range(EXECUTIONS)))
        await asyncio.gather(
            *(
                finish(side, client, before[side.name])
                for side, client in zip(sides, clients, strict=True)
            )
        )
        await asyncio.gather(*scrapers)
        completed = agent_execution_pb2.ListAgentExecutionsRequest(
            agent=AGENT, phase=common_pb2.EXECUTION_PHASE_COMPLETED, page_size=1000
        )
        for side, client in zip(sides, clients, strict=True):
            side.measured.completed += len(
                [e async for e in client.agent_executions.list_all(completed)]
            )
            side.measured.executions += EXECUTIONS
        return result


def _stop_runner(runner: subprocess.Popen[bytes], log_path: Path) -> None:
    """SIGTERM the runner (it drains: nothing is in flight by now); kill it if it hangs."""
    runner.terminate()
    try:
        runner.wait(RUNNER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        # Measured already; say why it hung rather than lose the run.
        tail = log_path.read_bytes().decode(errors="replace").splitlines()[-40:]
        print(
            f"the runner did not stop within {RUNNER_STOP_TIMEOUT:.0f} s of SIGTERM; "
            "killed it. Its last log lines:",
            *tail,
            sep="\n",
            file=sys.stderr,
        )
        runner.kill()
        runner.wait()


def _report(
    off: Measured, on: Measured, sink: OtlpReceiver, rounds: list[tuple[float, float]]
) -> list[str]:
    def overhead(name: str | None) -> tuple[float, float, float]:
        names = PROCESSES if name is None else (name,)
        base = sum(off.per_execution_ms(n) for n in names)
        with_obs = sum(on.per_execution_ms(n) for n in names)
        return base, with_obs, (with_obs - base) / base if base else float("nan")

    rows = []
    for name in (*PROCESSES, None):
        base, with_obs, ratio = overhead(name)
        label = name or "**orchestrator + runner**"
        rows.append(f"| {label} | {base:.1f} ms | {with_obs:.1f} ms | {ratio:+.1%} |")
    total = overhead(None)[2]
    verdict = "met" if total < TARGET else "NOT met"
    fleet = (
        f"an orchestrator process and a runner process; each runs {EXECUTIONS} executions of a "
        f"no-op agent (offline `scripted` model) after {WARMUP} warm-up executions, created "
        f"{CREATE_CONCURRENCY} at a time. Everything shares this machine's {os.cpu_count()} CPUs."
    )
    if MODE == "paired":
        how = [
            f"{ROUNDS} paired round(s): the two fleets, observability off and on, run **at the "
            "same time** on one Temporal dev server (in memory; a namespace, task queues and a "
            "data directory per fleet), and every execution is created on both at once, so "
            "whatever else loads the machine weighs on both alike. Each fleet is " + fleet
        ]
    else:
        how = [
            f"{ROUNDS} sequential round(s) of two fleets, observability off and on (alternating "
            "which runs first), each a Temporal dev server (in memory), " + fleet
        ]
    return [
        *how,
        "",
        "- **off**: `POLYFLEET_METRICS_PORT=0`, no OTLP endpoint.",
        f"- **on** ({', '.join(sorted(PARTS))}): "
        + " and ".join(
            text
            for part, text in (
                (
                    "metrics",
                    "`/metrics` on both processes (`POLYFLEET_METRICS_PORT`), scraped every "
                    f"{SCRAPE_INTERVAL:.0f} s, and OTLP metrics",
                ),
                ("tracing", "OTLP traces"),
            )
            if part in PARTS
        )
        + ", exported to an OTLP/gRPC receiver in the benchmark that counts and discards.",
        "",
        "| CPU per execution (user + system) | off | on | observability costs |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        f"- Executions COMPLETED: off {off.completed} / {off.executions}, "
        f"on {on.completed} / {on.executions}; wall time create→last terminal: "
        f"off {off.wall:.1f} s, on {on.wall:.1f} s.",
        f"- With observability on, the receiver got {sink.spans:,} spans "
        f"({sink.spans / max(on.executions + WARMUP * ROUNDS, 1):.1f} per execution) and "
        f"{sink.metric_exports} OTLP metric exports; {on.scrapes} `/metrics` scrapes read "
        f"{on.scrape_bytes / max(on.scrapes, 1) / 1024:.0f} KB each on average.",
        "- By round (orchestrator + runner, off → on): "
        + "; ".join(f"{a:.1f} → {b:.1f} ms ({(b - a) / a:+.1%})" for a, b in rounds)
        + f"; pooled {total:+.1%}.",
        "",
        f"Target: metrics and tracing cost under {TARGET:.0%} of the orchestrator's and runner's "
        f"CPU per execution: **{verdict}** ({total:+.1%}).",
    ]


def main() -> None:
    """Run the off/on fleets (paired or sequential), write docs/benchmarks.md."""
    if MODE not in ("paired", "sequential"):
        raise SystemExit(f"BENCH_OBS_MODE={MODE!r}: paired or sequential")
    off, on = Measured(), Measured()
    rounds: list[tuple[float, float]] = []
    sink = OtlpReceiver(keep=False)
    with tempfile.TemporaryDirectory() as tmp, sink.serving() as otlp:
        for round_number in range(ROUNDS):
            directory = Path(tmp) / str(round_number)
            figures: dict[str, float] = {}
            if MODE == "paired":
                sides = [Side(False, off, directory / "off"), Side(True, on, directory / "on")]
                with _cluster(directory, sides, otlp):
                    figures = asyncio.run(_drive(sides))
            else:
                # Off first in even rounds, on first in odd ones: a machine that slows down
                # or speeds up during the run weighs on both sides alike.
                for on_now in (False, True) if round_number % 2 == 0 else (True, False):
                    side = Side(
                        on_now, on if on_now else off, directory / ("on" if on_now else "off")
                    )
                    with _cluster(directory, [side], otlp):
                        figures.update(asyncio.run(_drive([side])))
            rounds.append((figures["off"], figures["on"]))
            print(
                f"round {round_number + 1}: off {figures['off']:.1f} ms, on {figures['on']:.1f} ms "
                f"({(figures['on'] - figures['off']) / figures['off']:+.1%})",
                file=sys.stderr,
            )
    write_section(
        "observability",
        "Observability on vs off: CPU per execution",
        _report(off, on, sink, rounds),
    )


if __name__ == "__main__":
    main()
