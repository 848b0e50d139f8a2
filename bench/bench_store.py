"""Benchmark: progress reports applied through the store vs. raw LMDB commits, same run.

Each polyfleet report is one write transaction that dedups by report ID, merges the
update into the execution, appends an event and updates indexes. The baseline is the
floor under it on this machine: one synchronous LMDB commit of the same two values.
Figures go to docs/benchmarks.md; compare the ratio, not absolute numbers (shared machines).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import lmdb

import store
from bench.report import write_section
from orchestrator.status import merge_agent_update
from polyfleet.v1 import agent_execution_pb2, common_pb2

REPORTS = 2000
CONCURRENCY = 8


def _update(i: int) -> common_pb2.ExecutionUpdate:
    return common_pb2.ExecutionUpdate(content_delta=f"token {i} ", delta_message_id="m")


def baseline(path: Path) -> float:
    """Sequential synchronous commits of an execution value and an event value."""
    env = lmdb.open(str(path), map_size=256 << 20, sync=True, max_dbs=4)
    executions = env.open_db(b"executions")
    events = env.open_db(b"events")
    execution = agent_execution_pb2.AgentExecution(id="aex-bench").SerializeToString()
    start = time.perf_counter()
    for i in range(REPORTS):
        with env.begin(write=True) as txn:
            txn.put(b"aex-bench", execution, db=executions)
            txn.put(
                b"aex-bench\x00" + i.to_bytes(8, "big"), _update(i).SerializeToString(), db=events
            )
    elapsed = time.perf_counter() - start
    env.close()
    return REPORTS / elapsed


async def polyfleet(path: Path, concurrency: int) -> float:
    """Reports applied through ``apply_report`` by ``concurrency`` concurrent callers."""
    db = store.Store.open(path)
    try:
        ids = []
        for n in range(concurrency):
            execution = agent_execution_pb2.AgentExecution(id=f"aex-bench-{n}")
            execution.status.phase = common_pb2.EXECUTION_PHASE_RUNNING
            ids.append((await db.agent_executions.create(execution)).id)

        async def worker(execution_id: str, count: int) -> None:
            for i in range(count):
                await db.agent_executions.apply_report(
                    execution_id, f"r{i}", "bench", _update(i), merge_agent_update
                )

        start = time.perf_counter()
        per = REPORTS // concurrency
        await asyncio.gather(*(worker(i, per) for i in ids))
        elapsed = time.perf_counter() - start
        return per * concurrency / elapsed
    finally:
        db.close()


def main() -> None:
    """Run the benchmark and write docs/benchmarks.md."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = baseline(root / "baseline")
        sequential = asyncio.run(polyfleet(root / "seq", 1))
        concurrent = asyncio.run(polyfleet(root / "conc", CONCURRENCY))
    rows = [
        ("raw LMDB commit, 2 puts (baseline)", base, 1.0),
        ("apply_report, 1 caller", sequential, sequential / base),
        (f"apply_report, {CONCURRENCY} concurrent callers", concurrent, concurrent / base),
    ]
    write_section(
        "store",
        "Progress reports through the store (durable, synchronous commits)",
        [
            f"{REPORTS} reports per case.",
            "",
            "| case | reports/s | vs. baseline |",
            "|---|---:|---:|",
            *[f"| {name} | {rate:,.0f} | {ratio:.2f}x |" for name, rate, ratio in rows],
            "",
            "Target: a report through the store costs no more than ~3x a bare synchronous LMDB",
            "commit (dedup check, merge, event append and index maintenance in the same commit).",
        ],
    )


if __name__ == "__main__":
    main()
