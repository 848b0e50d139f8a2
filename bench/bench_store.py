"""Benchmark: progress reports applied through the store vs. raw LMDB commits, same run.

Each polyfleet report is one write (``apply_report``) that dedups by report ID, merges the
update into the execution, appends an event and updates indexes; the store group-commits the
writes queued at once into one durable transaction. The baseline is the floor under one
report on this machine: one synchronous LMDB commit of the same two values. A second raw row
commits 32 reports per transaction: what grouping alone buys on this disk. Figures go to
docs/benchmarks.md; compare ratios, not absolute numbers (shared machines).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lmdb

import store
from bench.report import write_section
from orchestrator.status import merge_agent_update
from polyfleet.v1 import agent_execution_pb2, common_pb2

SEQUENTIAL_REPORTS = 2000
CONCURRENT_REPORTS = 8000
CALLERS = (1, 8, 32, 64)
RAW_GROUP = 32
TARGET = 20_000  # issue 16: report merges per second with 8+ concurrent callers


@dataclass(frozen=True)
class Case:
    """One measured case: throughput, commits and process CPU time per report."""

    name: str
    reports: int
    seconds: float
    commits: int
    cpu_seconds: float

    @property
    def rate(self) -> float:
        """Reports per second."""
        return self.reports / self.seconds


def _update(i: int) -> common_pb2.ExecutionUpdate:
    return common_pb2.ExecutionUpdate(content_delta=f"token {i} ", delta_message_id="m")


def baseline(path: Path, reports: int, per_commit: int) -> Case:
    """Synchronous commits of an execution value and an event value, ``per_commit`` at once."""
    env = lmdb.open(str(path), map_size=256 << 20, sync=True, max_dbs=4)
    executions = env.open_db(b"executions")
    events = env.open_db(b"events")
    execution = agent_execution_pb2.AgentExecution(id="aex-bench").SerializeToString()
    cpu, start = time.process_time(), time.perf_counter()
    for first in range(0, reports, per_commit):
        with env.begin(write=True) as txn:
            for i in range(first, min(first + per_commit, reports)):
                txn.put(b"aex-bench", execution, db=executions)
                key = b"aex-bench\x00" + i.to_bytes(8, "big")
                txn.put(key, _update(i).SerializeToString(), db=events)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    env.close()
    if per_commit == 1:
        name = "raw LMDB commit, 2 puts (baseline)"
    else:
        name = f"raw LMDB, {per_commit} reports per commit"
    return Case(name, reports, elapsed, -(-reports // per_commit), cpu)


def _last_txnid(path: Path) -> int:
    """The ID of the last committed LMDB transaction in the store at ``path`` (closed)."""
    env = lmdb.open(str(path), readonly=True, max_dbs=64, lock=False)
    try:
        return int(env.info()["last_txnid"])
    finally:
        env.close()


async def polyfleet(path: Path, callers: int, reports: int) -> Case:
    """``reports`` applied through ``apply_report`` by ``callers`` concurrent callers."""
    with store.Store.open(path) as db:
        ids = []
        for n in range(callers):
            execution = agent_execution_pb2.AgentExecution(id=f"aex-bench-{n}")
            execution.status.phase = common_pb2.EXECUTION_PHASE_RUNNING
            ids.append((await db.agent_executions.create(execution)).id)
    before = _last_txnid(path)

    with store.Store.open(path) as db:

        async def caller(execution_id: str, count: int) -> None:
            for i in range(count):
                await db.agent_executions.apply_report(
                    execution_id, f"r{i}", "bench", _update(i), merge_agent_update
                )

        per = reports // callers
        cpu, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(caller(i, per) for i in ids))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    name = "apply_report, 1 caller" if callers == 1 else f"apply_report, {callers} callers"
    return Case(name, per * callers, elapsed, _last_txnid(path) - before, cpu)


def main() -> None:
    """Run the benchmark and write docs/benchmarks.md."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = baseline(root / "baseline", SEQUENTIAL_REPORTS, 1)
        cases = [base, baseline(root / "grouped", CONCURRENT_REPORTS, RAW_GROUP)]
        for callers in CALLERS:
            reports = SEQUENTIAL_REPORTS if callers == 1 else CONCURRENT_REPORTS
            cases.append(asyncio.run(polyfleet(root / f"callers-{callers}", callers, reports)))
    concurrent = cases[3:]
    best = max(concurrent, key=lambda c: c.rate)
    met = all(c.rate >= TARGET for c in concurrent)
    rows = [
        f"| {c.name} | {c.reports:,} | {c.rate:,.0f} | {c.rate / base.rate:.2f}x "
        f"| {c.reports / c.commits:.1f} | {c.cpu_seconds / c.reports * 1e6:,.0f} µs |"
        for c in cases
    ]
    bounds = [
        f"{c.name.removeprefix('apply_report, ')}: disk "
        f"{c.reports / c.commits * base.rate:,.0f}/s, CPU {c.reports / c.cpu_seconds:,.0f}/s"
        for c in concurrent
    ]
    write_section(
        "store",
        "Progress reports through the store (durable, group-committed)",
        [
            "Each caller awaits each report before sending its next (one execution per caller); "
            "a report is acknowledged only once its transaction is on disk (`sync=True`). The "
            "store's writer commits every write queued at that moment as one transaction "
            "(group commit), so with N callers a commit holds up to N reports.",
            "",
            "| case | reports | reports/s | vs. baseline | reports per commit | CPU per report |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "- CPU per report: this process's user + system CPU time (event loop and writer "
            "thread) divided by the reports; its inverse bounds the rate once commits are "
            "grouped, whatever the disk.",
            "- Reports per commit: reports divided by the LMDB transactions committed in the case.",
            "- What bounds N callers that each have one report in flight: the disk, at most N "
            "reports per durable commit (N x the baseline's commits/s), and the CPU (1 / CPU per "
            "report, the event loop and the writer sharing one GIL): " + "; ".join(bounds) + ".",
            "",
            f"Target (issue 16): at least {TARGET:,} report merges/s with 8+ concurrent "
            f"callers: **{'met' if met else 'NOT met'}** (best: {best.rate:,.0f}/s, "
            f"{best.name}).",
        ],
    )


if __name__ == "__main__":
    main()
