"""Benchmark: what metrics and tracing cost, in CPU per execution, against a run without them.

Two fleets in the same run, one after the other, each a Temporal dev server (in memory), an
orchestrator process and one runner process, all on this machine:

- **off**: no `/metrics` endpoint (``POLYFLEET_METRICS_PORT=0``) and no OTLP endpoint, so
  neither metrics nor traces are exported;
- **on**: the orchestrator and the runner each serve `/metrics` (``POLYFLEET_METRICS_PORT``),
  scraped every ``SCRAPE_INTERVAL`` seconds, and export metrics and traces over OTLP
  (``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) to a
  receiver in this process that counts and discards.

Each fleet runs ``BENCH_OBS_EXECUTIONS`` agent executions of a no-op agent (the offline
``scripted`` model: no network) after a warm-up; the figure is each process's user + system
CPU time (psutil) from the first create to the last terminal state, divided by the
executions. ``BENCH_OBS_ROUNDS`` (default 2) repeats the off/on pair, alternating which
runs first; ``BENCH_OBS_PARTS`` (``metrics``: `/metrics` and OTLP metrics; ``tracing``: OTLP
traces only; or both, the default) says what "on" turns on, to tell the two costs apart. Run
with ``make bench``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from bench.report import cpu_seconds, write_section
from polyfleet.client import Client
from polyfleet.client.executions import AgentExecutions
from polyfleet.fleet import Fleet, FleetConfig, free_port
from polyfleet.v1 import agent_execution_pb2, agent_pb2, common_pb2

EXECUTIONS = int(os.environ.get("BENCH_OBS_EXECUTIONS", "200"))
ROUNDS = int(os.environ.get("BENCH_OBS_ROUNDS", "2"))
# What "on" turns on, to tell the two costs apart: metrics, tracing or both (the default).
PARTS = frozenset(os.environ.get("BENCH_OBS_PARTS", "metrics,tracing").split(","))
WARMUP = 10
CREATE_CONCURRENCY = 20
SCRAPE_INTERVAL = 5.0
WAIT_TIMEOUT = 600.0
RUNNER_STOP_TIMEOUT = 60.0
TARGET = 0.10
AGENT = "bench-noop"
WARM_AGENT = "bench-warmup"
PROCESSES = ("orchestrator", "runner")


class OtlpSink(
    trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer
):
    """An OTLP/gRPC receiver that counts what it is sent and keeps nothing."""

    def __init__(self) -> None:
        self.spans = 0
        self.metric_exports = 0
        self._lock = threading.Lock()

    def Export(  # noqa: N802 - both services name their one method Export
        self, request: object, context: grpc.ServicerContext
    ) -> object:
        """Count the spans (traces) or the export (metrics); answer success."""
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            count = sum(
                len(scope.spans)
                for resource in request.resource_spans
                for scope in resource.scope_spans
            )
            with self._lock:
                self.spans += count
            return trace_service_pb2.ExportTraceServiceResponse()
        with self._lock:
            self.metric_exports += 1
        return metrics_service_pb2.ExportMetricsServiceResponse()

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Serve on a free 127.0.0.1 port; yields the endpoint URL."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        # The generated registration functions carry no annotations.
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop(None).wait()


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


def _agent(name: str) -> agent_pb2.Agent:
    return agent_pb2.Agent(
        name=name,
        instructions="You are a benchmark agent.",
        model=agent_pb2.ModelConfig(
            provider="scripted",
            scripted=agent_pb2.ScriptedModel(default_reply="done"),
        ),
    )


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


async def _drive(address: str, pids: dict[str, int], urls: list[str], measured: Measured) -> None:
    async with await Client.connect(address) as client:
        await client.agents.apply(_agent(WARM_AGENT))
        await client.agents.apply(_agent(AGENT))
        for _ in range(WARMUP):  # imports, caches, first workflow tasks: not measured
            await client.agent_executions.execute(AgentExecutions.request(WARM_AGENT, "warm"))
        gate = asyncio.Semaphore(CREATE_CONCURRENCY)

        async def create() -> None:
            async with gate:
                await client.agent_executions.create(AGENT, "go")

        async def waiting() -> bool:
            # One tiny page per open phase: the benchmark's own load stays small.
            for phase in (common_pb2.EXECUTION_PHASE_PENDING, common_pb2.EXECUTION_PHASE_RUNNING):
                request = agent_execution_pb2.ListAgentExecutionsRequest(
                    agent=AGENT, phase=phase, page_size=1
                )
                if (await client.agent_executions.list(request)).executions:
                    return True
            return False

        stop = asyncio.Event()
        scraper = asyncio.create_task(_scrape(urls, measured, stop)) if urls else None
        before = cpu_seconds(pids)
        started = time.perf_counter()
        await asyncio.gather(*(create() for _ in range(EXECUTIONS)))
        while await waiting():
            if time.perf_counter() - started > WAIT_TIMEOUT:
                break
            await asyncio.sleep(0.5)
        measured.wall += time.perf_counter() - started
        after = cpu_seconds(pids)
        stop.set()
        if scraper:
            await scraper
        completed = agent_execution_pb2.ListAgentExecutionsRequest(
            agent=AGENT, phase=common_pb2.EXECUTION_PHASE_COMPLETED, page_size=1000
        )
        measured.completed += len([e async for e in client.agent_executions.list_all(completed)])
    for name in pids:
        measured.cpu[name] += after[name] - before[name]
    measured.executions += EXECUTIONS


def _run_fleet(tmp: Path, on: bool, otlp: str, measured: Measured) -> None:
    """One fleet (observability ``on`` or off), its runner, one measured batch."""
    data_dir = tmp / ("on" if on else "off") / str(measured.executions)
    data_dir.mkdir(parents=True)
    metrics = on and "metrics" in PARTS
    orchestrator_port, runner_port = (free_port(), free_port()) if metrics else (0, 0)
    # Each part has its own OTLP variable, so "tracing" alone exports no metrics and
    # "metrics" alone no spans (OTEL_EXPORTER_OTLP_ENDPOINT would turn on both).
    observability = {
        variable: otlp
        for part, variable in (
            ("metrics", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
            ("tracing", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        )
        if on and part in PARTS
    }
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "POLYFLEET_METRICS_"))
    }
    env.update(POLYFLEET_LOG_LEVEL="WARNING")
    config = FleetConfig(
        data_dir=data_dir,
        runners=0,
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        api_address=f"127.0.0.1:{free_port()}",
        base_env=env,
        temporal_in_memory=True,
        # Only the orchestrator sees the observability settings (not the Temporal server).
        orchestrator_command=(
            "env",
            f"POLYFLEET_METRICS_PORT={orchestrator_port}",
            *(f"{key}={value}" for key, value in observability.items()),
            sys.executable,
            "-m",
            "orchestrator",
        ),
    )
    log_path = data_dir / "runner.log"
    runner_env = {
        **env,
        **observability,
        "POLYFLEET_METRICS_PORT": str(runner_port),
        "TEMPORAL_ADDRESS": config.temporal_address,
        "TEMPORAL_NAMESPACE": config.namespace,
        "POLYFLEET_API_ADDRESS": config.api_address,
        "POLYFLEET_LOG_LEVEL": "INFO",  # its "runner polling" line says it is ready
    }
    with Fleet(config, report=lambda _: None) as fleet, log_path.open("wb") as log:
        runner = subprocess.Popen(
            [sys.executable, "-m", "runner"], env=runner_env, stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + 90
            while b"runner polling" not in log_path.read_bytes():
                if time.monotonic() > deadline or runner.poll() is not None:
                    raise RuntimeError(f"the benchmark's runner did not start; see {log_path}")
                time.sleep(0.1)
            pids = {child.name: child.popen.pid for child in fleet.children}
            pids = {"orchestrator": pids["orchestrator"], "runner": runner.pid}
            urls = [f"http://127.0.0.1:{port}/metrics" for port in (orchestrator_port, runner_port)]
            asyncio.run(_drive(config.api_address, pids, urls if metrics else [], measured))
        finally:
            _stop_runner(runner, log_path)


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
    off: Measured, on: Measured, sink: OtlpSink, rounds: list[tuple[float, float]]
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
    return [
        f"{ROUNDS} round(s) of two fleets, observability off and on (alternating which runs "
        "first), each a Temporal dev server "
        f"(in memory), an orchestrator process and a runner process; each runs {EXECUTIONS} "
        f"executions of a no-op agent (offline `scripted` model) after {WARMUP} warm-up "
        f"executions, created {CREATE_CONCURRENCY} at a time. Everything shares this machine's "
        f"{os.cpu_count()} CPUs.",
        "",
        "- **off**: `POLYFLEET_METRICS_PORT=0`, no `OTEL_EXPORTER_OTLP_ENDPOINT`.",
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
        + ".",
        "",
        f"Target: metrics and tracing cost under {TARGET:.0%} of the orchestrator's and runner's "
        f"CPU per execution: **{verdict}** ({total:+.1%}).",
    ]


def main() -> None:
    """Run the off/on fleets, write docs/benchmarks.md."""
    off, on = Measured(), Measured()
    rounds: list[tuple[float, float]] = []
    sink = OtlpSink()
    with tempfile.TemporaryDirectory() as tmp, sink.serving() as otlp:
        for round_number in range(ROUNDS):
            # Off first in even rounds, on first in odd ones: a machine that slows down or
            # speeds up during the run weighs on both sides alike.
            order = (False, True) if round_number % 2 == 0 else (True, False)
            start = off.total_ms(), on.total_ms()
            for on_now in order:
                _run_fleet(Path(tmp), on_now, otlp, on if on_now else off)
            rounds.append(
                ((off.total_ms() - start[0]) / EXECUTIONS, (on.total_ms() - start[1]) / EXECUTIONS)
            )
    write_section(
        "observability",
        "Observability on vs off: CPU per execution",
        _report(off, on, sink, rounds),
    )


if __name__ == "__main__":
    main()
