"""kill -9 at any moment loses no acknowledged write (store/README.md, "Threads and durability")."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest

from store import Store

WRITER = Path(__file__).with_name("store_crash_writer.py")
ACKS_BEFORE_KILL = 400


def start_writer(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_acks(stdout: IO[str], count: int) -> list[str]:
    lines: list[str] = []
    while len(lines) < count:
        line = stdout.readline()
        if not line:
            break  # the writer died; the caller reports its stderr
        lines.append(line)
    return lines


def parse(lines: list[str]) -> tuple[dict[str, str], dict[str, int]]:
    executions: dict[str, str] = {}
    events: dict[str, int] = {}
    for line in lines:
        if not line.endswith("\n"):
            continue  # torn by the kill: never acknowledged
        kind, execution_id, value = line.split()
        if kind == "execution":
            executions[execution_id] = value
        else:
            events[execution_id] = int(value)
    return executions, events


async def list_ids(db: Store) -> set[str]:
    ids: set[str] = set()
    token = ""
    while True:
        page, token = await db.agent_executions.list(
            filters={"agent": "crash"}, page_size=1000, page_token=token
        )
        ids.update(e.id for e in page)
        if not token:
            return ids


@pytest.mark.timeout(60)
async def test_sigkill_loses_no_acknowledged_write(tmp_path: Path) -> None:
    path = tmp_path / "store"
    proc = await asyncio.to_thread(start_writer, path)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        lines = await asyncio.to_thread(read_acks, proc.stdout, ACKS_BEFORE_KILL)
        if len(lines) < ACKS_BEFORE_KILL:
            pytest.fail(f"the writer stopped after {len(lines)} acks:\n{proc.stderr.read()}")
        proc.send_signal(signal.SIGKILL)
        # Acks printed before the kill may still sit in the pipe; they count too.
        lines += (await asyncio.to_thread(proc.stdout.read)).splitlines(keepends=True)
    finally:
        if proc.poll() is None:
            proc.kill()
        await asyncio.to_thread(proc.wait, 10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    executions, events = parse(lines)
    assert len(executions) >= ACKS_BEFORE_KILL // 2

    with Store.open(path) as db:
        for execution_id, key in executions.items():
            execution = await db.agent_executions.get(execution_id)
            assert execution.message == f"message {key}"
            assert execution.labels["key"] == key
        for execution_id, sequence in events.items():
            execution = await db.agent_executions.get(execution_id)
            assert execution.status.last_sequence >= sequence
            assert execution.status.output_text == executions[execution_id]
            logged = await db.agent_executions.events(execution_id)
            assert [e.sequence for e in logged][:sequence] == list(range(1, sequence + 1))
        assert await list_ids(db) >= set(executions), "the indexes survived too"
        # The store is still writable after the crash.
        await db.agent_executions.update(next(iter(executions)), lambda e: None)
