"""Benchmark: one runner process holding many concurrent agent executions.

The model is a fake OpenAI-compatible server on 127.0.0.1 that streams its answer after a
fixed latency (``MODEL_LATENCY``), reached through the runner's real ``openai`` provider
(LangChain's ChatOpenAI over HTTP), so the figures measure polyfleet, not a provider. The
server counts the requests open at once: the number of model calls the runner held
concurrently, which is the figure the target is about.

Two runs, each with a fresh runner process handed ``BENCH_EXECUTIONS`` queued executions:

- **1 s model**: every answer comes 1 s after its request. How many the runner holds at
  once is then bounded by how fast the fleet dispatches executions to it.
- **hold**: every request is held until all of them are open at once (or
  ``HOLD_TIMEOUT``), then answered 1 s later; this shows the runner holding them all.

Baselines from the same run: each runner's idle RSS, and one execution alone.
Run with ``make bench`` (BENCH_EXECUTIONS overrides the count, default 1000).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
from google.protobuf.duration_pb2 import Duration

from bench.harness import Sampler, fake_openai_agent, local_fleet
from bench.report import cpu_seconds, write_section
from polyfleet.client import Client, is_terminal, phase_name
from polyfleet.client.executions import AgentExecutions
from polyfleet.fleet import Fleet
from polyfleet.v1 import agent_execution_pb2, agent_pb2, common_pb2, fleet_pb2
from tests.integration.graphton.fake_openai import FakeOpenAI, Recorded, Reply

EXECUTIONS = int(os.environ.get("BENCH_EXECUTIONS", "1000"))
MODEL_LATENCY = 1.0
CREATE_CONCURRENCY = 50
RSS_TARGET_MB = 500
HOLD_TIMEOUT = 600.0
WAIT_TIMEOUT = 1800.0
MB = 1024 * 1024


def _answer(_: Recorded) -> Reply:
    # One chunk after MODEL_LATENCY: the whole answer arrives after the latency.
    return Reply(text="done", chunk_delay=MODEL_LATENCY, chunk_size=64)


class Barrier:
    """Holds every request until ``count`` have arrived (or ``timeout``), then lets all go."""

    def __init__(self, count: int, timeout: float) -> None:
        self.count = count
        self.timeout = timeout
        self.arrived = 0
        self.first_at = 0.0
        self.all_at = 0.0
        self._open: asyncio.Event | None = None

    async def __call__(self, _: Recorded) -> None:
        """Wait until every request has arrived."""
        # Created here, on the fake server's own event loop.
        if self._open is None:
            self._open = asyncio.Event()
            self.first_at = time.monotonic()
        self.arrived += 1
        if self.arrived >= self.count:
            self.all_at = time.monotonic()
            self._open.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._open.wait(), self.timeout)


async def _started(client: Client) -> None:
    """Wait until the orchestrator has run every queued workflow's first task.

    Otherwise the runner's measurement would include start-up work of the orchestrator that
    faster creates leave for later: no workflow task waiting on an orchestrator queue, twice
    in a row a second apart (Temporal's backlog counts are approximate), or a minute at most.
    """
    orchestrator = fleet_pb2.TASK_QUEUE_ROLE_ORCHESTRATOR
    deadline, quiet = time.perf_counter() + 60, 0
    while quiet < 2 and time.perf_counter() < deadline:
        status = await client.fleet.status()
        waiting = sum(
            q.workflow_tasks.backlog_count for q in status.queues if q.role == orchestrator
        )
        quiet = quiet + 1 if waiting == 0 else 0
        await asyncio.sleep(1)


def _seconds(execution: agent_execution_pb2.AgentExecution) -> float:
    status = execution.status
    return (status.end_time.ToNanoseconds() - status.start_time.ToNanoseconds()) / 1e9


class RssSampler(Sampler):
    """Samples a process's resident set size in the background and keeps the peak."""

    interval = 0.2

    def __init__(self, pid: int) -> None:
        super().__init__()
        self._process = psutil.Process(pid)
        self.peak = 0

    def now(self) -> int:
        """Current RSS in bytes."""
        return int(self._process.memory_info().rss)

    def sample(self) -> None:
        """Keep the peak."""
        self.peak = max(self.peak, self.now())


@dataclass
class Outcome:
    """What one run measured."""

    executions: list[agent_execution_pb2.AgentExecution]
    creates_per_second: float
    wall: float
    held: int
    idle_rss: int
    peak_rss: int
    # CPU seconds per process (temporal, orchestrator, runner, benchmark) during the run.
    cpu: dict[str, float]

    @property
    def completed(self) -> list[agent_execution_pb2.AgentExecution]:
        """The executions that ended COMPLETED."""
        phase = common_pb2.EXECUTION_PHASE_COMPLETED
        return [e for e in self.executions if e.status.phase == phase]

    def met(self) -> bool:
        """All COMPLETED, all held at once, RSS within the target."""
        return (
            len(self.completed) == EXECUTIONS
            and self.held >= EXECUTIONS
            and self.peak_rss / MB <= RSS_TARGET_MB
        )


class Bench:
    """One fleet; runs each scenario with a fresh runner process (construct in a loop)."""

    def __init__(
        self,
        address: str,
        start_runner: Callable[[], int],
        stop_runner: Callable[[], None],
        pids: dict[str, int],
    ):
        self.address = address
        self.start_runner = start_runner
        self.stop_runner = stop_runner
        # The fleet's processes and this one (client and fake model server).
        self.pids = {**pids, "benchmark": os.getpid()}

    async def _list(self, client: Client, agent: str) -> list[agent_execution_pb2.AgentExecution]:
        request = agent_execution_pb2.ListAgentExecutionsRequest(agent=agent, page_size=1000)
        return [e async for e in client.agent_executions.list_all(request)]

    async def scenario(self, client: Client, agent: str, server: FakeOpenAI) -> Outcome:
        """Queue the executions, start a runner, wait until every one is terminal."""
        # A held request waits for the whole batch; one attempt, no client timeout.
        retry = agent_pb2.ModelRetry(
            max_attempts=1, timeout=Duration(seconds=int(HOLD_TIMEOUT) + 60)
        )
        await client.agents.apply(fake_openai_agent(agent, server.url, retry))
        # Queue every execution before the runner starts, so it is handed all of them at
        # once (and the create rate does not limit the concurrency measured).
        gate = asyncio.Semaphore(CREATE_CONCURRENCY)

        async def create() -> None:
            async with gate:
                await client.agent_executions.create(agent, "go")

        started = time.perf_counter()
        await asyncio.gather(*(create() for _ in range(EXECUTIONS)))
        creates_per_second = EXECUTIONS / (time.perf_counter() - started)
        await _started(client)

        runner = await asyncio.to_thread(self.start_runner)
        sampler = RssSampler(runner)
        pids = {**self.pids, "runner": runner}
        cpu_before = cpu_seconds(pids)
        idle = sampler.now()
        sampler.start()
        started = time.perf_counter()
        # One List page per second, not a Get per execution: the benchmark's own load on
        # the orchestrator stays small next to the runner's.
        while time.perf_counter() - started < WAIT_TIMEOUT:
            executions = await self._list(client, agent)
            if sum(is_terminal(e.status.phase) for e in executions) >= EXECUTIONS:
                break
            await asyncio.sleep(1)
        wall = time.perf_counter() - started
        await sampler.stop()
        cpu_after = cpu_seconds(pids)
        cpu = {name: cpu_after[name] - cpu_before[name] for name in pids}
        return Outcome(
            executions, creates_per_second, wall, server.max_in_flight, idle, sampler.peak, cpu
        )

    async def alone(self, client: Client, agent: str) -> float:
        """Runner time (RUNNING to terminal) of one execution on an idle runner."""
        request = AgentExecutions.request(agent, "go")
        return _seconds(await client.agent_executions.execute(request))

    async def run(self) -> list[str]:
        """Both scenarios, then the report lines."""
        barrier = Barrier(EXECUTIONS, HOLD_TIMEOUT)
        async with await Client.connect(self.address) as client:
            with FakeOpenAI(_answer) as plain, FakeOpenAI(_answer, gate=barrier) as held:
                latency = await self.scenario(client, "bench-latency", plain)
                baseline = await self.alone(client, "bench-latency")
                await asyncio.to_thread(self.stop_runner)
                hold = await self.scenario(client, "bench-hold", held)
                await asyncio.to_thread(self.stop_runner)
        gathered = barrier.all_at - barrier.first_at if barrier.all_at else float("nan")
        return _report(latency, hold, baseline, gathered)


def _report(latency: Outcome, hold: Outcome, baseline: float, gathered: float) -> list[str]:
    durations = sorted(_seconds(e) for e in latency.completed)
    median = statistics.median(durations) if durations else float("nan")
    p95 = durations[int(len(durations) * 0.95) - 1] if durations else float("nan")

    def rows(label: str, key: Callable[[Outcome], str]) -> str:
        return f"| {label} | {key(latency)} | {key(hold)} |"

    def cpu_row(name: str) -> str:
        def ms(o: Outcome) -> str:
            return f"{o.cpu.get(name, 0.0) * 1000 / max(len(o.executions), 1):,.1f} ms"

        return rows(f"CPU per execution: {name}", ms)

    def per_held(o: Outcome) -> str:
        return f"{(o.peak_rss - o.idle_rss) / max(o.held, 1) / 1024:,.0f} KB"

    verdict = "met" if hold.met() else "NOT met"
    failures = Counter(
        f"{o_name}: {phase_name(e.status.phase)} "
        f"{e.status.error.type} {e.status.error.message}".rstrip()
        for o_name, o in (("1 s model", latency), ("hold", hold))
        for e in o.executions
        if e.status.phase != common_pb2.EXECUTION_PHASE_COMPLETED
    )
    return [
        f"{EXECUTIONS} executions queued, then one fresh runner process started and handed all "
        f"of them (`POLYFLEET_RUNNER_MAX_CONCURRENT_ACTIVITIES={EXECUTIONS + 10}`). The model "
        "is a fake OpenAI-compatible server on 127.0.0.1, reached through the runner's real "
        "`openai` provider; it counts the model calls open at once. Temporal is the dev "
        f"server, in memory; everything shares this machine's {os.cpu_count()} CPUs.",
        "",
        "- **1 s model**: each answer streams 1 s after its request.",
        "- **hold**: each request waits until all of them are open at once, then its answer "
        "streams 1 s later.",
        "",
        "| figure | 1 s model | hold |",
        "|---|---:|---:|",
        rows("executions COMPLETED", lambda o: f"{len(o.completed)} / {EXECUTIONS}"),
        rows("**model calls held by the runner at once (peak)**", lambda o: f"**{o.held}**"),
        rows("wall time, runner start to last terminal", lambda o: f"{o.wall:.1f} s"),
        rows("executions/s", lambda o: f"{len(o.completed) / o.wall:,.1f}"),
        rows("creates (API + store + workflow start)", lambda o: f"{o.creates_per_second:,.0f} /s"),
        rows("runner RSS at start (baseline)", lambda o: f"{o.idle_rss / MB:,.0f} MB"),
        rows("runner RSS peak", lambda o: f"{o.peak_rss / MB:,.0f} MB"),
        rows("runner RSS growth ÷ peak calls held", per_held),
        *(cpu_row(name) for name in ("temporal", "orchestrator", "runner", "benchmark")),
        "",
        "- CPU per execution: each process's user + system CPU time from runner start to the "
        "last terminal state, divided by the executions; `benchmark` is the client and the "
        "fake model server.",
        f"- One execution alone, RUNNING to terminal (baseline): {baseline:.3f} s, so "
        f"{(baseline - MODEL_LATENCY) * 1000:.0f} ms of polyfleet per model step.",
        f"- Under load (1 s model), RUNNING to terminal: median {median:.3f} s, p95 {p95:.3f} s. "
        "This includes waiting for the orchestrator's workflow task that persists the "
        "terminal state.",
        f"- hold: the last of the {EXECUTIONS} model calls arrived {gathered:.1f} s after the "
        "first.",
        *(f"- not COMPLETED, {count}x: {what}" for what, count in failures.most_common(5)),
        "",
        f"Target: one runner holds {EXECUTIONS} concurrent executions, all COMPLETED, runner "
        f"RSS <= {RSS_TARGET_MB} MB: **{verdict}** (hold run). With the 1 s model the runner "
        f"held at most {latency.held} at once: an execution then occupies the runner for about "
        "a second, so holding all of them at once would need the fleet to dispatch about "
        f"{EXECUTIONS} executions per second; this fleet dispatched "
        f"{len(latency.completed) / latency.wall:,.1f}/s on {os.cpu_count()} shared CPUs.",
    ]


async def _bench(
    address: str,
    start_runner: Callable[[], int],
    stop_runner: Callable[[], None],
    pids: dict[str, int],
) -> list[str]:
    return await Bench(address, start_runner, stop_runner, pids).run()


def main() -> None:
    """Start a local fleet, run the benchmark, write docs/benchmarks.md."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env.update(
            POLYFLEET_RUNNER_MAX_CONCURRENT_ACTIVITIES=str(EXECUTIONS + 10),
            POLYFLEET_ACTIVITY_SCHEDULE_TO_START_TIMEOUT="1800",
            POLYFLEET_LOG_LEVEL="WARNING",
        )
        config = local_fleet(Path(tmp), env, 0, http_address=None)
        runners: list[subprocess.Popen[bytes]] = []
        log_path = Path(tmp) / "runner.log"

        def start_runner() -> int:
            runner_env = {
                **env,
                "TEMPORAL_ADDRESS": config.temporal_address,
                "TEMPORAL_NAMESPACE": config.namespace,
                "POLYFLEET_API_ADDRESS": config.api_address,
                "POLYFLEET_LOG_LEVEL": "INFO",  # its "runner polling" line says it is ready
            }
            log_path.write_bytes(b"")
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "runner"], env=runner_env, stdout=log, stderr=log
                )
            runners.append(process)
            # Wait until it has imported everything and polls: RSS then is the baseline.
            deadline = time.monotonic() + 60
            while b"runner polling" not in log_path.read_bytes():
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the benchmark's runner did not start; see {log_path}")
                time.sleep(0.1)
            return process.pid

        def stop_runner() -> None:
            for process in runners:
                process.terminate()
                process.wait(60)

        try:
            with Fleet(config, report=print) as fleet:
                pids = {child.name: child.popen.pid for child in fleet.children}
                lines = asyncio.run(_bench(config.api_address, start_runner, stop_runner, pids))
        finally:
            stop_runner()
    write_section("runner", "One runner, many concurrent agent executions", lines)


if __name__ == "__main__":
    main()
