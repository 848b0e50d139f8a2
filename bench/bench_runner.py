"""Benchmark: one runner process holding many concurrent agent executions.

The fake model is the offline scripted provider with a fixed latency (one streamed chunk
after ``MODEL_LATENCY_MS``), so the figures measure polyfleet, not a provider. Baselines
from the same run: the runner's idle RSS, and the duration of a single execution alone.
Run with ``make bench`` (BENCH_EXECUTIONS overrides the count, default 1000).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from bench.report import write_section
from polyfleet.channel import create_channel
from polyfleet.fleet import Fleet, FleetConfig, free_port
from polyfleet.v1 import (
    agent_execution_pb2,
    agent_execution_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    common_pb2,
)

EXECUTIONS = int(os.environ.get("BENCH_EXECUTIONS", "1000"))
MODEL_LATENCY_MS = 1000
CREATE_CONCURRENCY = 50
RSS_TARGET_MB = 500


def _agent() -> agent_pb2.Agent:
    return agent_pb2.Agent(
        name="bench",
        model=agent_pb2.ModelConfig(
            provider="scripted",
            scripted=agent_pb2.ScriptedModel(
                default_reply="done", chunk_delay_ms=MODEL_LATENCY_MS, chunk_words=50
            ),
        ),
    )


def _seconds(execution: agent_execution_pb2.AgentExecution) -> float:
    status = execution.status
    return (status.end_time.ToNanoseconds() - status.start_time.ToNanoseconds()) / 1e9


class RssSampler:
    """Samples a process's resident set size in the background and keeps the peak."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def now(self) -> int:
        """Current RSS in bytes."""
        return int(self._process.memory_info().rss)

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.now())
            await asyncio.sleep(0.2)

    def start(self) -> None:
        """Start sampling."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def _run(address: str, runner_pid: int) -> list[str]:
    channel = create_channel(address)
    agents = agent_pb2_grpc.AgentServiceStub(channel)
    executions = agent_execution_pb2_grpc.AgentExecutionServiceStub(channel)
    await agents.ApplyAgent(agent_pb2.ApplyAgentRequest(agent=_agent()))
    sampler = RssSampler(runner_pid)

    def request() -> agent_execution_pb2.ExecuteAgentRequest:
        return agent_execution_pb2.ExecuteAgentRequest(
            request=agent_execution_pb2.CreateAgentExecutionRequest(
                execution=agent_execution_pb2.AgentExecution(agent="bench", message="go")
            )
        )

    # The first execution also waits for the runner to finish starting; measure idle after it.
    alone = await executions.ExecuteAgent(request())
    baseline = _seconds(alone)
    idle = sampler.now()

    gate = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def create() -> str:
        async with gate:
            created = await executions.CreateAgentExecution(request().request)
            return created.id

    sampler.start()
    started = time.perf_counter()
    ids = await asyncio.gather(*(create() for _ in range(EXECUTIONS)))
    created_in = time.perf_counter() - started
    done: dict[str, agent_execution_pb2.AgentExecution] = {}
    while len(done) < len(ids):
        for execution_id in ids:
            if execution_id in done:
                continue
            execution = await executions.GetAgentExecution(
                agent_execution_pb2.GetAgentExecutionRequest(id=execution_id)
            )
            if execution.status.phase in (
                common_pb2.EXECUTION_PHASE_COMPLETED,
                common_pb2.EXECUTION_PHASE_FAILED,
                common_pb2.EXECUTION_PHASE_CANCELLED,
            ):
                done[execution_id] = execution
        await asyncio.sleep(0.5)
    elapsed = time.perf_counter() - started
    await sampler.stop()
    await channel.close()

    completed = [e for e in done.values() if e.status.phase == common_pb2.EXECUTION_PHASE_COMPLETED]
    durations = sorted(_seconds(e) for e in completed)
    median = statistics.median(durations) if durations else float("nan")
    p95 = durations[int(len(durations) * 0.95) - 1] if durations else float("nan")
    mb = 1024 * 1024
    verdict = (
        "met" if len(completed) == EXECUTIONS and sampler.peak / mb <= RSS_TARGET_MB else "NOT met"
    )
    latency = MODEL_LATENCY_MS / 1000
    per_execution_kb = (sampler.peak - idle) / EXECUTIONS / 1024
    return [
        f"{EXECUTIONS} executions created at once against one runner process "
        f"(scripted model answering after {latency:g} s; creates {CREATE_CONCURRENCY} at a time).",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| executions COMPLETED | {len(completed)} / {EXECUTIONS} |",
        f"| wall time, first create to last terminal | {elapsed:.1f} s |",
        f"| creates (API + store + workflow start) | {EXECUTIONS / created_in:,.0f} /s |",
        f"| executions/s | {len(completed) / elapsed:,.1f} |",
        f"| runner RSS idle (baseline) | {idle / mb:,.0f} MB |",
        f"| runner RSS peak | {sampler.peak / mb:,.0f} MB |",
        f"| runner RSS per concurrent execution | {per_execution_kb:,.0f} KB |",
        f"| one execution alone, runner time (baseline) | {baseline:.3f} s |",
        f"| runner time per execution under load, median / p95 | {median:.3f} s / {p95:.3f} s |",
        f"| runner overhead per model step alone / under load (median) | "
        f"{(baseline - latency) * 1000:.0f} ms / {(median - latency) * 1000:.0f} ms |",
        "",
        f"Target: {EXECUTIONS} concurrent executions all COMPLETED with runner RSS "
        f'<= {RSS_TARGET_MB} MB: **{verdict}**. "Runner time" is RUNNING to terminal as recorded '
        "in the status; it includes reporting to the orchestrator.",
    ]


def main() -> None:
    """Start a local fleet, run the benchmark, write docs/benchmarks.md."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env.update(
            POLYFLEET_RUNNER_MAX_CONCURRENT_ACTIVITIES=str(EXECUTIONS + 10),
            POLYFLEET_ACTIVITY_SCHEDULE_TO_START_TIMEOUT="600",
            POLYFLEET_LOG_LEVEL="WARNING",
        )
        config = FleetConfig(
            data_dir=Path(tmp),
            temporal_port=free_port(),
            temporal_ui_port=free_port(),
            api_address=f"127.0.0.1:{free_port()}",
            base_env=env,
        )
        with Fleet(config, report=print) as fleet:
            runner = next(c for c in fleet.children if c.name.startswith("runner"))
            lines = asyncio.run(_run(config.api_address, runner.pid))
    write_section("runner", "One runner, many concurrent agent executions", lines)


if __name__ == "__main__":
    main()
