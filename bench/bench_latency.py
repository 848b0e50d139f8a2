"""Benchmark: latency under a steady load, with a 1 s model.

A fleet (Temporal dev server in memory, the orchestrator, one runner) runs an agent on the
runner's real ``openai`` provider, pointed at a fake OpenAI-compatible server on 127.0.0.1
that answers 1 s after each request. Executions are created **open loop**: one every
``1 / BENCH_LATENCY_RATE`` seconds (default 20/s) for ``BENCH_LATENCY_SECONDS`` (default 60),
whether or not earlier ones have finished, as independent clients would. Then the benchmark
waits until every execution is terminal.

Reported: create→RUNNING and RUNNING→terminal (from each execution's status timestamps),
CPU per execution and CPU utilisation of each process, and, for a sample of executions read
from their Temporal histories, where each one's time goes from Create to terminal (every
workflow task, activity and queue wait); between RUNNING and terminal that is the runner's
activity, the wait for the orchestrator's workflow task, and the UpdateStatus write.
Baseline from the same run: one execution alone. Run with ``make bench``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client as TemporalClient

from bench.harness import Sampler, fake_openai_agent, local_fleet
from bench.report import cpu_seconds, write_section
from polyfleet import contract
from polyfleet.client import Client, PolyfleetError, is_terminal, phase_name
from polyfleet.client.executions import AgentExecutions
from polyfleet.fleet import Fleet
from polyfleet.v1 import agent_execution_pb2, agent_pb2, common_pb2
from tests.integration.graphton.fake_openai import FakeOpenAI, Recorded, Reply

RATE = float(os.environ.get("BENCH_LATENCY_RATE", "20"))
SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "60"))
# Executions whose Temporal history is read for the breakdown, spread over the run.
SAMPLE = int(os.environ.get("BENCH_LATENCY_SAMPLE", "100"))
MODEL_LATENCY = 1.0
TARGET_SECONDS = 1.5
WAIT_TIMEOUT = 900.0
IDLE_SECONDS = 5.0
AGENT = "bench-latency"


def _answer(_: Recorded) -> Reply:
    # One chunk after MODEL_LATENCY: the whole answer arrives after the latency.
    return Reply(text="done", chunk_delay=MODEL_LATENCY, chunk_size=64)


def _s(t: Timestamp) -> float:
    return t.ToNanoseconds() / 1e9


def _create_to_running(e: agent_execution_pb2.AgentExecution) -> float:
    return _s(e.status.start_time) - _s(e.create_time)


def _running_to_terminal(e: agent_execution_pb2.AgentExecution) -> float:
    return _s(e.status.end_time) - _s(e.status.start_time)


def _stats(values: Sequence[float]) -> tuple[float, float, float]:
    """Median, p95 and max (NaN for none)."""
    if not values:
        return (float("nan"),) * 3
    ordered = sorted(values)
    p95 = ordered[max(int(len(ordered) * 0.95) - 1, 0)]
    return statistics.median(ordered), p95, ordered[-1]


class CpuSampler(Sampler):
    """Samples each process's CPU use once a second: whole process and its main thread.

    The main thread is the Python interpreter's (it holds the GIL most of the time); near
    100 % of one core there, a Python process cannot go faster whatever the machine has.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__()
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
        self._last: tuple[dict[str, tuple[float, float]], float] | None = None

    def _read(self) -> dict[str, tuple[float, float]]:
        read = {}
        for name, process in self._processes.items():
            times = process.cpu_times()
            main = next((t for t in process.threads() if t.id == process.pid), None)
            read[name] = (
                times.user + times.system,
                main.user_time + main.system_time if main else 0.0,
            )
        return read

    def sample(self) -> None:
        """Each process's use since the last sample, as a share of one core."""
        now, now_at = self._read(), time.perf_counter()
        if self._last is not None:
            before, at = self._last
            span = now_at - at
            for name, (total, main) in now.items():
                self.samples[name].append(
                    ((total - before[name][0]) / span, (main - before[name][1]) / span)
                )
        self._last = now, now_at

    def summary(self, name: str) -> str:
        """Mean / p95 utilisation of the process and of its main thread, in % of a core."""
        samples = self.samples[name]
        if not samples:
            return "n/a"
        totals = sorted(s[0] for s in samples)
        mains = sorted(s[1] for s in samples)
        p95 = max(int(len(samples) * 0.95) - 1, 0)
        return (
            f"{statistics.mean(totals) * 100:.0f} % / {totals[p95] * 100:.0f} % "
            f"(main thread {statistics.mean(mains) * 100:.0f} % / {mains[p95] * 100:.0f} %)"
        )


# The segments of an execution's life, in order, from its Temporal history and its status:
# (key, what it is). Each is the time from the previous mark to this one.
SEGMENTS = (
    ("start", "Create received → workflow started (store writes, StartWorkflowExecution)"),
    ("wft1_wait", "→ first workflow task picked up by the orchestrator"),
    ("wft1_run", "→ that task completed (EnsureThread scheduled)"),
    ("ensure_wait", "→ EnsureThread picked up by the runner"),
    ("ensure_run", "→ EnsureThread completed"),
    ("wft2_wait", "→ second workflow task picked up"),
    ("wft2_run", "→ that task completed (ExecuteGraphton scheduled)"),
    ("graphton_wait", "→ ExecuteGraphton picked up by the runner"),
    ("to_running", "→ RUNNING persisted (context fetched, RUNNING reported)"),
    ("activity", "→ ExecuteGraphton completed (model call, reports, completion)"),
    ("wft3_wait", "→ third workflow task picked up by the orchestrator"),
    ("update_status", "→ terminal state written by the local UpdateStatus"),
    ("wft3_close", "→ that task completed (the workflow closed)"),
)
# Where RUNNING → terminal is: the segments after RUNNING up to the terminal write.
AFTER_RUNNING = ("activity", "wft3_wait", "update_status")


def _event_seconds(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


def breakdown(
    execution: agent_execution_pb2.AgentExecution, events: list[HistoryEvent]
) -> dict[str, float] | None:
    """Split the life of ``execution`` into SEGMENTS using its workflow history ``events``.

    Returns:
        Seconds per segment key, or None when the history lacks a step (not COMPLETED).

    """
    marks: list[float] = [_s(execution.create_time)]
    scheduled: dict[int, str] = {}
    activities: dict[str, list[float]] = {}
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            marks.append(_event_seconds(event))
        elif kind in (
            EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        ):
            marks.append(_event_seconds(event))
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            scheduled[event.event_id] = attributes.activity_type.name
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            name = scheduled.get(event.activity_task_started_event_attributes.scheduled_event_id)
            activities.setdefault(name or "", []).append(_event_seconds(event))
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            name = scheduled.get(event.activity_task_completed_event_attributes.scheduled_event_id)
            activities.setdefault(name or "", []).append(_event_seconds(event))
    ensure = activities.get(contract.ENSURE_THREAD, [])
    graphton = activities.get(contract.EXECUTE_GRAPHTON, [])
    # Created, workflow started, then three workflow tasks (started, completed) each.
    if len(marks) != 8 or len(ensure) != 2 or len(graphton) != 2:
        return None
    created, started, t1s, t1c, t2s, t2c, t3s, t3c = marks
    timeline = [
        created, started, t1s, t1c, *ensure, t2s, t2c, graphton[0],
        _s(execution.status.start_time), graphton[1], t3s,
        _s(execution.status.end_time), t3c,
    ]  # fmt: skip
    return {
        key: later - earlier
        for (key, _), (earlier, later) in zip(SEGMENTS, itertools.pairwise(timeline), strict=True)
    }


@dataclass
class Outcome:
    """What the run measured."""

    executions: list[agent_execution_pb2.AgentExecution]
    created: int
    create_seconds: float
    create_lag: float
    refused: Counter[str]
    wall: float
    cpu: dict[str, float]
    sampler: CpuSampler
    breakdowns: list[dict[str, float]] = field(default_factory=list)
    baseline: float = float("nan")
    baseline_breakdown: dict[str, float] = field(default_factory=dict)
    # CPU use of each process while idle, in cores.
    idle: dict[str, float] = field(default_factory=dict)

    @property
    def completed(self) -> list[agent_execution_pb2.AgentExecution]:
        """The executions that ended COMPLETED."""
        phase = common_pb2.EXECUTION_PHASE_COMPLETED
        return [e for e in self.executions if e.status.phase == phase]


async def _list(client: Client) -> list[agent_execution_pb2.AgentExecution]:
    request = agent_execution_pb2.ListAgentExecutionsRequest(agent=AGENT, page_size=1000)
    return [e async for e in client.agent_executions.list_all(request)]


async def _histories(
    temporal: TemporalClient, executions: list[agent_execution_pb2.AgentExecution]
) -> list[dict[str, float]]:
    step = max(len(executions) // max(SAMPLE, 1), 1)
    sample = executions[::step][:SAMPLE]
    found = []
    for execution in sample:
        handle = temporal.get_workflow_handle(contract.agent_workflow_id(execution.id))
        history = await handle.fetch_history()
        part = breakdown(execution, list(history.events))
        if part is not None:
            found.append(part)
    return found


async def run(address: str, temporal_address: str, pids: dict[str, int]) -> Outcome:
    """Baseline, then the steady load; every figure of the report."""
    temporal = await TemporalClient.connect(temporal_address)
    async with await Client.connect(address) as client:
        with FakeOpenAI(_answer) as server:
            await client.agents.apply(
                fake_openai_agent(AGENT, server.url, agent_pb2.ModelRetry(max_attempts=1))
            )
            # Warm-up (imports, first connections), then one execution alone: the baseline.
            # The wait is long: the runner may still be importing when the fleet is up.
            request = AgentExecutions.request(AGENT, "go")
            await client.agent_executions.execute(request, wait_seconds=300)
            alone = await client.agent_executions.execute(AgentExecutions.request(AGENT, "go"))
            baseline = _running_to_terminal(alone)
            skip = {e.id for e in await _list(client)}

            # What the processes use idle (pollers, timers): part of every figure below.
            idle_before = cpu_seconds(pids)
            await asyncio.sleep(IDLE_SECONDS)
            idle_after = cpu_seconds(pids)
            idle = {n: (idle_after[n] - idle_before[n]) / IDLE_SECONDS for n in pids}
            sampler = CpuSampler(pids)
            cpu_before = cpu_seconds(pids)
            sampler.start()
            count = int(RATE * SECONDS)
            created = 0
            refused: Counter[str] = Counter()
            lag = 0.0

            async def create() -> None:
                nonlocal created
                try:
                    # Each with its own request ID, as a client that retries safely sends.
                    await client.agent_executions.create(AGENT, "go", request_id=uuid.uuid4().hex)
                except PolyfleetError as err:
                    # Counted, not fatal: an overloaded API is part of what is measured.
                    refused[str(err)[:160]] += 1
                else:
                    created += 1

            started = time.perf_counter()
            tasks = []
            for i in range(count):
                due = started + i / RATE
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    lag = max(lag, -delay)
                tasks.append(asyncio.create_task(create()))
            await asyncio.gather(*tasks)
            create_seconds = time.perf_counter() - started
            # One List a second, not a Get per execution: the benchmark's own load on the
            # orchestrator stays small.
            while time.perf_counter() - started < WAIT_TIMEOUT:
                executions = [e for e in await _list(client) if e.id not in skip]
                if len(executions) >= created and all(
                    is_terminal(e.status.phase) for e in executions
                ):
                    break
                await asyncio.sleep(1)
            wall = time.perf_counter() - started
            await sampler.stop()
            cpu_after = cpu_seconds(pids)
    outcome = Outcome(
        executions=executions,
        created=created,
        create_seconds=create_seconds,
        create_lag=lag,
        refused=refused,
        wall=wall,
        cpu={name: cpu_after[name] - cpu_before[name] for name in pids},
        sampler=sampler,
        baseline=baseline,
        idle=idle,
    )
    executions.sort(key=lambda e: _s(e.create_time))
    outcome.breakdowns = await _histories(temporal, outcome.completed)
    alone_parts = await _histories(temporal, [alone])
    outcome.baseline_breakdown = alone_parts[0] if alone_parts else {}
    return outcome


def report(o: Outcome) -> list[str]:
    """The section's lines."""
    done = o.completed
    to_running = _stats([_create_to_running(e) for e in done])
    to_terminal = _stats([_running_to_terminal(e) for e in done])
    median = to_terminal[0]
    complete = len(done) == o.created and not o.refused
    verdict = "met" if median <= TARGET_SECONDS and complete else "NOT met"

    def triple(values: tuple[float, float, float]) -> str:
        return " | ".join(f"{v:.3f} s" for v in values)

    def segment(key: str, label: str) -> str:
        median, p95, _ = _stats([b[key] for b in o.breakdowns])
        bold = "**" if key in AFTER_RUNNING else ""
        alone = o.baseline_breakdown.get(key, float("nan"))
        return f"| {bold}{label}{bold} | {alone:.3f} s | {median:.3f} s | {p95:.3f} s |"

    failures = Counter(
        f"{phase_name(e.status.phase)} {e.status.error.type} {e.status.error.message}".rstrip()
        for e in o.executions
        if e.status.phase != common_pb2.EXECUTION_PHASE_COMPLETED
    )
    cpu_names = ("temporal", "orchestrator", "runner", "benchmark")
    per = max(len(o.executions), 1)
    fleet_ms = sum(o.cpu.get(name, 0.0) for name in cpu_names[:3]) * 1000 / per
    return [
        f"Open loop: one `AgentExecutionService.Create` every {1 / RATE * 1000:.0f} ms "
        f"({RATE:g}/s) for {SECONDS:g} s, each with its own `request_id` and no session, "
        "whether or not earlier executions have finished; "
        "then the benchmark waits for every execution to be terminal. One runner process; the "
        "model is a fake OpenAI-compatible server on 127.0.0.1, reached through the runner's "
        f"real `openai` provider, answering {MODEL_LATENCY:g} s after each request. Temporal "
        f"is the dev server, in memory; everything shares this machine's {os.cpu_count()} CPUs.",
        "",
        "| figure | median | p95 | max |",
        "|---|---:|---:|---:|",
        f"| create → RUNNING | {triple(to_running)} |",
        f"| **RUNNING → terminal** | {triple(to_terminal)} |",
        "",
        f"- Executions COMPLETED: {len(done)} / {o.created}; creates achieved "
        f"{o.created / o.create_seconds:.1f}/s (the schedule fell behind by at most "
        f"{o.create_lag * 1000:.0f} ms); wall time, first create to last terminal: "
        f"{o.wall:.1f} s.",
        f"- One execution alone, RUNNING → terminal (baseline): {o.baseline:.3f} s.",
        "- CPU per execution (user + system, first create to last terminal ÷ executions): "
        + ", ".join(f"{name} {o.cpu.get(name, 0.0) * 1000 / per:.1f} ms" for name in cpu_names)
        + "; `benchmark` is the client and the fake model server.",
        f"- The fleet (Temporal, orchestrator, runner) used {fleet_ms:.0f} ms of CPU per "
        f"execution: at {RATE:g}/s that is {fleet_ms * RATE / 1000:.1f} cores of this "
        f"machine's {os.cpu_count()} (which other work shares).",
        "- CPU utilisation, mean / p95 of one-second samples, in % of one core: "
        + "; ".join(f"{name} {o.sampler.summary(name)}" for name in cpu_names)
        + "; idle before the load: "
        + ", ".join(f"{name} {o.idle.get(name, 0.0) * 100:.0f} %" for name in cpu_names)
        + ".",
        *(f"- not COMPLETED, {count}x: {what}" for what, count in failures.most_common(5)),
        *(f"- create failed, {count}x: {what}" for what, count in o.refused.most_common(5)),
        "",
        f"Where the time goes, for {len(o.breakdowns)} executions spread over the run (from "
        "their Temporal histories and status timestamps; each row is the time since the "
        "previous one; the rows between RUNNING and terminal are in bold; `alone` is the "
        "baseline execution):",
        "",
        "| segment | alone | under load: median | p95 |",
        "|---|---:|---:|---:|",
        *(segment(key, label) for key, label in SEGMENTS),
        "",
        f"Target: with a {MODEL_LATENCY:g} s model and a steady {RATE:g} executions/s, median "
        f"RUNNING → terminal ≤ {TARGET_SECONDS:g} s: **{verdict}** ({median:.3f} s).",
    ]


def main() -> None:
    """Start a local fleet, run the benchmark, write docs/benchmarks.md."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        # The runner keeps its default concurrency: what a deployment gets.
        env["POLYFLEET_LOG_LEVEL"] = "WARNING"
        config = local_fleet(Path(tmp), env, 1, http_address=None)
        with Fleet(config, report=print) as fleet:
            # One runner: called plainly "runner" in the report.
            pids = {child.name.split("-")[0]: child.popen.pid for child in fleet.children}
            pids["benchmark"] = os.getpid()
            outcome = asyncio.run(run(config.api_address, config.temporal_address, pids))
    write_section("latency", "Latency under a steady load (1 s model)", report(outcome))


if __name__ == "__main__":
    main()
