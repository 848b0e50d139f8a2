"""Benchmark: the whole fleet against raw Temporal with the same hops.

Both sides run on one Temporal dev server (in memory), each on task queues of its own:

- **raw**: raw Temporal with polyfleet's hops (bench/raw_temporal.py): one workflow on a
  workflow queue reads the runner queue from its memo, runs ``EnsureThread`` then
  ``ExecuteGraphton`` there (trivial bodies, the contract's timeouts and retry policies),
  then one local activity. The workflow worker and the activity worker are two processes;
  the client (this process) starts the workflow and waits for its result.
- **fleet**: an orchestrator process and one runner process (:class:`polyfleet.fleet.Fleet`)
  as they run by default, with TLS and bearer tokens on (dev credentials) and traces exported
  over OTLP to a receiver in this process that counts and discards; a no-op agent (the
  offline ``scripted`` model, no delay), driven by ``ExecuteAgent`` over gRPC.

Each round is a closed loop: ``N`` callers in flight, each running executions back to back
until the round's ``BENCH_FLEET_EXECUTIONS`` are done (default 100 at 5 in flight, 300 at 50).
Rounds alternate raw / fleet, ``BENCH_FLEET_ROUNDS`` (default 2) of each at each level, after
unmeasured warm-up executions. The figures: throughput (completed executions per second of
the rounds' wall time), latency (the client's call to its result), each process's user +
system CPU time (psutil) per execution, the fleet's store commits and RunnerService calls per
execution (the orchestrator's ``/metrics``), and what did not complete, and why. Run with
``make bench``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowFailureError
from temporalio.common import Priority

from bench import raw_temporal
from bench.harness import local_fleet, noop_agent, stop_process
from bench.report import cpu_seconds, write_section
from orchestrator.executions import DEFAULT_PRIORITY
from polyfleet import contract
from polyfleet.client import Client, PolyfleetError, phase_name
from polyfleet.client.executions import AgentExecutions
from polyfleet.dev_credentials import DevCredentials
from polyfleet.fleet import Fleet, FleetConfig
from polyfleet.roles import Role
from polyfleet.telemetry.temporal_metrics import parse
from polyfleet.v1 import activities_pb2, common_pb2
from tests.otlp import OtlpReceiver

ROUNDS = int(os.environ.get("BENCH_FLEET_ROUNDS", "2"))
# Executions per round at each level of in-flight callers; BENCH_FLEET_EXECUTIONS sets all.
LEVELS = {5: 100, 50: 300}
if "BENCH_FLEET_EXECUTIONS" in os.environ:
    LEVELS = dict.fromkeys(LEVELS, int(os.environ["BENCH_FLEET_EXECUTIONS"]))
WARMUP_MIN = 10
STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
SCRAPE_TIMEOUT = 10.0
AGENT = "bench-fleet"
COMMITS = "store commits"
RUNNER_SERVICE = "/polyfleet.v1.RunnerService/"
HOST = "127.0.0.1"
# The targets, at the highest level: fleet/raw throughput at least, latencies at most.
TARGET_LEVEL = max(LEVELS)
TARGET_THROUGHPUT = 0.9
TARGET_P50 = 1.2
TARGET_P99 = 1.5
SIDES = ("raw", "fleet")
# The measured processes of each side, by the role they play.
ROLES = ("temporal", "workflows", "activities", "client")
ROLE_TITLES = {
    "temporal": "Temporal dev server",
    "workflows": "orchestrator / raw workflow worker",
    "activities": "runner / raw activity worker",
    "client": "client (this process)",
}


@dataclass
class Measured:
    """What one side measured at one level, pooled over its rounds."""

    latencies: list[float] = field(default_factory=list)
    # Executions run; only the completed ones count in throughput and latency.
    executions: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # Executions per second of each round, to show how much the rounds differ.
    rounds: list[float] = field(default_factory=list)
    # The fleet's store commits and RunnerService calls (by method) during the rounds.
    hops: Counter[str] = field(default_factory=Counter)

    @property
    def throughput(self) -> float:
        """Completed executions per second of wall time."""
        return len(self.latencies) / self.wall if self.wall else float("nan")

    def percentile(self, p: float) -> float:
        """The ``p``-th percentile latency in seconds (nearest rank)."""
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    def cpu_ms(self, role: str) -> float:
        """CPU milliseconds of ``role``'s process per execution."""
        return self.cpu[role] * 1000 / max(self.executions, 1)


# One execution, started and waited for: "" when it completed, else why not.
Call = Callable[[], Awaitable[str]]


async def _closed_loop(call: Call, in_flight: int, total: int) -> Measured:
    """Run ``total`` calls, ``in_flight`` at a time, each caller back to back."""
    measured = Measured()
    remaining = total

    async def caller() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            failure = await call()
            if failure:
                measured.failures[failure] += 1
            else:
                measured.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(in_flight)))
    measured.wall = time.perf_counter() - started
    measured.executions = total
    return measured


@dataclass
class Bench:
    """Both sides' callers and processes, and what each side measured per level."""

    raw_client: TemporalClient
    fleet_client: Client
    pids: dict[str, dict[str, int]]
    # The orchestrator's /metrics, where the fleet's hops are counted.
    metrics_url: str
    results: dict[tuple[str, int], Measured] = field(default_factory=dict)
    # The machine's 1-minute load average after each round: how shared the CPUs were.
    load: list[float] = field(default_factory=list)

    async def raw_call(self) -> str:
        """One raw workflow, started and waited for."""
        execution_id = f"raw-{uuid.uuid4().hex}"
        try:
            await self.raw_client.execute_workflow(
                raw_temporal.WORKFLOW,
                activities_pb2.AgentExecutionWorkflowInput(execution_id=execution_id),
                id=f"{raw_temporal.WORKFLOW}/{execution_id}",
                task_queue=raw_temporal.WORKFLOW_QUEUE,
                memo={contract.MEMO_ACTIVITY_TASK_QUEUE: raw_temporal.ACTIVITY_QUEUE},
                run_timeout=contract.AGENT_RUN_TIMEOUT,
                priority=Priority(priority_key=DEFAULT_PRIORITY),
                result_type=activities_pb2.AgentExecutionWorkflowOutput,
            )
        except WorkflowFailureError as err:
            # The innermost cause says what failed, e.g. an activity's timeout.
            cause: BaseException = err
            while cause.__cause__ is not None:
                cause = cause.__cause__
            return f"{type(cause).__name__}: {cause}"
        return ""

    async def fleet_call(self) -> str:
        """One agent execution through ExecuteAgent."""
        request = AgentExecutions.request(AGENT, "go")
        try:
            execution = await self.fleet_client.agent_executions.execute(request)
        except PolyfleetError as err:
            return f"{type(err).__name__}: {str(err).split(chr(10))[0]}"
        status = execution.status
        if status.phase != common_pb2.EXECUTION_PHASE_COMPLETED:
            return f"{phase_name(status.phase)} {status.error.type}: {status.error.message}"
        return ""

    def call(self, side: str) -> Call:
        """The call of ``side``."""
        return self.raw_call if side == "raw" else self.fleet_call

    async def round(self, side: str, in_flight: int, total: int) -> None:
        """One measured round of ``side``; adds to its figures at this level."""
        hops = side == "fleet"
        counted = await asyncio.to_thread(_hops, self.metrics_url) if hops else Counter()
        before = cpu_seconds(self.pids[side])
        measured = await _closed_loop(self.call(side), in_flight, total)
        after = cpu_seconds(self.pids[side])
        pooled = self.results.setdefault((side, in_flight), Measured())
        if hops:
            pooled.hops += await asyncio.to_thread(_hops, self.metrics_url) - counted
        pooled.latencies += measured.latencies
        pooled.executions += measured.executions
        pooled.failures += measured.failures
        pooled.wall += measured.wall
        pooled.rounds.append(measured.throughput)
        for role in ROLES:
            pooled.cpu[role] += after[role] - before[role]
        print(
            f"{in_flight} in flight, {side}: {measured.throughput:.1f} exec/s, "
            f"p50 {measured.percentile(50) * 1000:.0f} ms, "
            f"{measured.failures.total()} not completed",
            file=sys.stderr,
        )

    async def run(self) -> None:
        """Warm both sides up at each level, then alternate their rounds."""
        for in_flight, total in LEVELS.items():
            for side in SIDES:  # imports, caches, first workflow tasks: not measured
                await _closed_loop(self.call(side), in_flight, max(WARMUP_MIN, in_flight))
            for _ in range(ROUNDS):
                for side in SIDES:
                    await self.round(side, in_flight, total)
                    self.load.append(os.getloadavg()[0])


def _hops(metrics_url: str) -> Counter[str]:
    """The orchestrator's store commits and RunnerService calls (by method) so far."""
    with urllib.request.urlopen(metrics_url, timeout=SCRAPE_TIMEOUT) as response:
        text = response.read().decode()
    counts: Counter[str] = Counter()
    for family in parse(text):
        for name, labels, value in family.samples:
            method = labels.get("method", "")
            if name == "polyfleet_store_commit_duration_seconds_count":
                counts[COMMITS] += int(value)
            elif name == "polyfleet_api_requests_total" and method.startswith(RUNNER_SERVICE):
                counts[method.removeprefix(RUNNER_SERVICE)] += int(value)
    return counts


def _hop_lines(results: dict[tuple[str, int], Measured]) -> list[str]:
    """The fleet's store commits and RunnerService calls per execution, a line per level."""
    lines = []
    for in_flight in LEVELS:
        fleet = results["fleet", in_flight]
        per = {what: count / max(fleet.executions, 1) for what, count in fleet.hops.items()}
        calls = {what: n for what, n in sorted(per.items()) if what != COMMITS}
        lines.append(
            f"- Per fleet execution at {in_flight} in flight (the orchestrator's `/metrics`): "
            f"{per.get(COMMITS, 0.0):.2f} store commits, {sum(calls.values()):.2f} "
            "RunnerService calls ("
            + ", ".join(f"{what} {n:.2f}" for what, n in calls.items())
            + ")."
        )
    return lines


def _ratio(fleet: float, raw: float) -> float:
    return fleet / raw if raw else float("nan")


def _verdict(met: bool, raw: Measured, fleet: Measured) -> str:
    """Met or not; undetermined against a baseline that failed executions itself."""
    if raw.failures:
        return "undetermined"
    return "met" if met and not fleet.failures else "NOT met"


def _report(bench: Bench, spans: int) -> list[str]:
    results = bench.results
    header = (
        "| in flight | side | exec/s | p50 | p99 | "
        + " | ".join(f"CPU/exec: {ROLE_TITLES[role]}" for role in ROLES)
        + " | CPU/exec: all |"
    )
    rows = [header, "|---|---|" + "---:|" * (3 + len(ROLES) + 1)]
    for in_flight in LEVELS:
        raw, fleet = results["raw", in_flight], results["fleet", in_flight]
        for side, measured in (("raw", raw), ("fleet", fleet)):
            cpu = [measured.cpu_ms(role) for role in ROLES]
            rows.append(
                f"| {in_flight} | {side} | {measured.throughput:.1f} | "
                f"{measured.percentile(50) * 1000:.0f} ms | "
                f"{measured.percentile(99) * 1000:.0f} ms | "
                + " | ".join(f"{ms:.1f} ms" for ms in cpu)
                + f" | {sum(cpu):.1f} ms |"
            )
        ratios = [
            _ratio(fleet.throughput, raw.throughput),
            _ratio(fleet.percentile(50), raw.percentile(50)),
            _ratio(fleet.percentile(99), raw.percentile(99)),
            *(_ratio(fleet.cpu_ms(role), raw.cpu_ms(role)) for role in ROLES),
            _ratio(sum(map(fleet.cpu_ms, ROLES)), sum(map(raw.cpu_ms, ROLES))),
        ]
        rows.append(
            f"| {in_flight} | **fleet/raw** | " + " | ".join(f"**{r:.2f}x**" for r in ratios) + " |"
        )
    raw, fleet = results["raw", TARGET_LEVEL], results["fleet", TARGET_LEVEL]
    throughput = _ratio(fleet.throughput, raw.throughput)
    p50 = _ratio(fleet.percentile(50), raw.percentile(50))
    p99 = _ratio(fleet.percentile(99), raw.percentile(99))
    by_round = "; ".join(
        f"{in_flight} in flight: raw "
        + ", ".join(f"{x:.1f}" for x in results["raw", in_flight].rounds)
        + ", fleet "
        + ", ".join(f"{x:.1f}" for x in results["fleet", in_flight].rounds)
        for in_flight in LEVELS
    )
    completed = "; ".join(
        f"{in_flight} in flight: "
        + ", ".join(
            f"{side} {len(measured.latencies)} / {measured.executions}"
            for side in SIDES
            for measured in [results[side, in_flight]]
        )
        for in_flight in LEVELS
    )
    failures = [
        f"- not completed ({side}, {in_flight} in flight), {count}x: {what}"
        for in_flight in LEVELS
        for side in SIDES
        for what, count in results[side, in_flight].failures.most_common(3)
    ]
    fleet_executions = sum(results["fleet", level].executions for level in LEVELS)
    warmups = sum(max(WARMUP_MIN, level) for level in LEVELS)
    counts = ", ".join(f"{total} at {level}" for level, total in LEVELS.items())
    return [
        "No-op agent executions through the whole fleet against raw Temporal with exactly the "
        "same hops, on one Temporal dev server (in memory), each side on task queues of its "
        "own; everything shares this machine's "
        f"{os.cpu_count()} CPUs, and both sides' processes stay up throughout.",
        "",
        "- **raw** (bench/raw_temporal.py): one workflow on a workflow queue reads the runner "
        "queue from its memo, runs `EnsureThread` then `ExecuteGraphton` there (trivial "
        "bodies; the contract's timeouts, retry policies and priority; `json/protobuf` "
        "payloads), then one local activity. Its workflow worker (the orchestrator's sandbox "
        "settings) and its activity worker (the runner's worker settings) are two processes; "
        "the client starts the workflow and waits for its result.",
        "- **fleet**: an orchestrator process and one runner process as they run by default, "
        "with TLS and bearer tokens on (dev credentials) and traces exported over OTLP to a "
        "receiver in the benchmark process that counts and discards "
        f"({spans / max(fleet_executions + warmups, 1):.1f} spans per execution); a no-op "
        "agent (the offline `scripted` model, no delay), driven by `ExecuteAgent` over gRPC.",
        "",
        f"Closed loop: at each level, that many callers each run executions back to back "
        f"until the round's executions are done ({counts} in flight). Rounds alternate raw / "
        f"fleet, {ROUNDS} of each per level, after unmeasured warm-up executions; the figures "
        "pool the rounds. Throughput is completed executions per second of the rounds' wall "
        "time; latency is the client's call to its result (completed executions); CPU per "
        "execution is each process's user + system CPU time (psutil) during the side's rounds "
        "divided by its executions "
        "(the client's includes, on the fleet side, the OTLP receiver).",
        "",
        *rows,
        "",
        f"- Executions completed: {completed}.",
        *_hop_lines(results),
        "- The machine's 1-minute load average after each round: "
        + ", ".join(f"{load:.1f}" for load in bench.load)
        + f" (on {os.cpu_count()} CPUs; other work on the machine weighs on both sides).",
        *failures,
        f"- Throughput by round (exec/s), {by_round}.",
        "",
        f"Targets at {TARGET_LEVEL} in flight, fleet/raw: throughput ≥ {TARGET_THROUGHPUT}x: "
        f"**{_verdict(throughput >= TARGET_THROUGHPUT, raw, fleet)}** ({throughput:.2f}x); "
        f"p50 latency ≤ {TARGET_P50}x: **{_verdict(p50 <= TARGET_P50, raw, fleet)}** "
        f"({p50:.2f}x); p99 latency ≤ {TARGET_P99}x: "
        f"**{_verdict(p99 <= TARGET_P99, raw, fleet)}** ({p99:.2f}x).",
        *_caveats(raw, fleet),
    ]


def _caveats(raw: Measured, fleet: Measured) -> list[str]:
    """Why the verdicts say what they say when either side did not complete everything."""
    lines = []
    if raw.failures:
        lines.append(
            f"The raw baseline did not complete {raw.failures.total()} of its "
            f"{raw.executions} executions at {TARGET_LEVEL} in flight, so the ratios compare "
            "against a failing baseline and the targets are undetermined. Its `ExecuteGraphton` "
            "sends no heartbeat (a no-op body): a heartbeat timeout there means more than "
            f"{contract.HEARTBEAT_TIMEOUT.total_seconds():.0f} s passed between its start and "
            "its result."
        )
    if fleet.failures:
        lines.append(
            f"The fleet did not complete {fleet.failures.total()} of its {fleet.executions} "
            f"executions at {TARGET_LEVEL} in flight: no target is met with failures."
        )
    # A paragraph each.
    return [part for line in lines for part in ("", line)]


def _spawn(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in a session of its own, its output in ``log_path``."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_for_line(line: bytes, process: subprocess.Popen[bytes] | None, log: Path) -> None:
    """Wait until ``log`` holds ``line``; raise if ``process`` exits or STARTUP_TIMEOUT passes."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not (log.exists() and line in log.read_bytes()):
        if time.monotonic() > deadline or (process is not None and process.poll() is not None):
            # The log goes with the temporary directory: say here why.
            tail = (
                log.read_bytes().decode(errors="replace").splitlines()[-30:] if log.exists() else []
            )
            raise RuntimeError("\n".join([f"{log.name}: the process did not start", *tail]))
        time.sleep(0.1)


@contextmanager
def _raw_workers(temporal_address: str, namespace: str, tmp: Path) -> Iterator[dict[str, int]]:
    """The raw side's two worker processes, polling; yields their PIDs by role."""
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for role, argument, queue in (
            ("workflows", "workflow", raw_temporal.WORKFLOW_QUEUE),
            ("activities", "activities", raw_temporal.ACTIVITY_QUEUE),
        ):
            log = tmp / f"raw-{argument}.log"
            command = [sys.executable, "-m", "bench.raw_temporal", argument]
            command += ["--address", temporal_address, "--namespace", namespace, "--queue", queue]
            processes[role] = _spawn(command, log)
            _wait_for_line(raw_temporal.READY_LINE.encode(), processes[role], log)
        yield {role: process.pid for role, process in processes.items()}
    finally:
        for process in processes.values():
            stop_process(process)


def _fleet_config(tmp: Path, otlp: str) -> FleetConfig:
    # Inherited observability settings would change what the fleet exports.
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = otlp
    return local_fleet(
        tmp / "fleet",
        env,
        1,
        http_address=None,
        credentials=DevCredentials.ensure(tmp / "credentials"),
        startup_timeout=STARTUP_TIMEOUT,
        stop_timeout=STOP_TIMEOUT,
    )


async def _bench(config: FleetConfig, pids: dict[str, dict[str, int]], metrics_url: str) -> Bench:
    credentials = config.credentials
    assert credentials is not None
    raw_client = await TemporalClient.connect(config.temporal_address, namespace=config.namespace)
    fleet_client = await Client.connect(
        config.api_address,
        tls=True,
        root_cert=credentials.ca_cert,
        token=credentials.tokens[Role.ADMIN],
    )
    async with fleet_client:
        await fleet_client.agents.apply(noop_agent(AGENT))
        bench = Bench(raw_client, fleet_client, pids, metrics_url)
        await bench.run()
    return bench


def main() -> None:
    """Start the fleet and the raw workers on one dev server, measure, write the section."""
    sink = OtlpReceiver(keep=False)
    with tempfile.TemporaryDirectory() as directory, sink.serving() as otlp:
        tmp = Path(directory)
        config = _fleet_config(tmp, otlp)
        with Fleet(config, report=print) as fleet:
            metrics_url = fleet.metrics_url
            assert metrics_url is not None, "the fleet's orchestrator serves /metrics by default"
            children = {child.name: child.pid for child in fleet.children}
            # The fleet does not wait for its runner; the raw side's wait is its own.
            runner_log = config.log_dir / "runner-1.log"
            _wait_for_line(b"runner polling", fleet.children[-1].popen, runner_log)
            with _raw_workers(config.temporal_address, config.namespace, tmp) as raw:
                client = {"temporal": children["temporal"], "client": os.getpid()}
                pids = {
                    "raw": {**raw, **client},
                    "fleet": {
                        "workflows": children["orchestrator"],
                        "activities": children["runner-1"],
                        **client,
                    },
                }
                bench = asyncio.run(_bench(config, pids, metrics_url))
        # Read once the fleet has stopped: its processes export their last spans as they stop.
        spans = sink.spans
    write_section(
        "fleet",
        "The fleet against raw Temporal with the same hops",
        _report(bench, spans),
    )


if __name__ == "__main__":
    main()
