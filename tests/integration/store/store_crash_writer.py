"""Write executions and events forever, printing each one only after the store acknowledged it.

Run by test_store_crash.py, which SIGKILLs this process mid-write and checks every
acknowledged write is intact. Usage: python store_crash_writer.py STORE_DIR
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from polyfleet.v1 import agent_execution_pb2, common_pb2
from store import Store

# Enough concurrent writers that the store group-commits several writes per transaction.
WRITERS = 16
# Small, so the map also grows while the process is being killed.
INITIAL_MAP_SIZE = 256 * 1024


def merge(
    execution: agent_execution_pb2.AgentExecution, update: common_pb2.ExecutionUpdate
) -> None:
    execution.status.output_text = update.output_text


async def write_forever(db: Store, writer: int) -> None:
    n = 0
    while True:
        n += 1
        key = f"{writer}-{n}"
        execution = await db.agent_executions.create(
            agent_execution_pb2.AgentExecution(
                agent="crash",
                message=f"message {key}",
                labels={"key": key, "padding": "p" * 2000},
                status=agent_execution_pb2.AgentExecutionStatus(
                    phase=common_pb2.EXECUTION_PHASE_PENDING
                ),
            )
        )
        print("execution", execution.id, key, flush=True)
        _, event, _ = await db.agent_executions.apply_report(
            execution.id,
            f"report-{key}",
            "runner",
            common_pb2.ExecutionUpdate(output_text=key),
            merge,
        )
        print("event", execution.id, event.sequence, flush=True)


async def main(path: Path) -> None:
    db = Store.open(path, map_size=INITIAL_MAP_SIZE)
    await asyncio.gather(*(write_forever(db, w) for w in range(WRITERS)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
