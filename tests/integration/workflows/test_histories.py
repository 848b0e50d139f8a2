"""Record the workflow-execution histories that tests/unit/orchestrator/test_replay.py replays.

Each run makes a completed and a failed workflow execution on the real dev server and replays
their fresh histories, so the recording path keeps working. With
``POLYFLEET_RECORD_HISTORIES=1`` it also writes them to tests/unit/orchestrator/histories/,
which is how the committed ``workflow_execution_*.json`` files were made. Record a new history
when a workflow gains a path (a ``workflow.patched`` branch, say), never to paper over a
replay failure: that failure is the change breaking running executions.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.worker import Replayer

from orchestrator.workflows import WORKFLOWS
from polyfleet.v1 import common_pb2
from tests.conftest import Fleet
from tests.integration.workflows.conftest import RAISE_BAD_ORDER, apply_workflow, finish, start

HISTORIES = Path(__file__).resolve().parents[2] / "unit" / "orchestrator" / "histories"
RECORD = os.environ.get("POLYFLEET_RECORD_HISTORIES") == "1"

# One workflow per outcome: a DSL `raise` fails the ExecuteWorkflow activity non-retryably.
RUNS = {
    "completed": (
        common_pb2.EXECUTION_PHASE_COMPLETED,
        """
        do:
          - total:
              set:
                total: ${ .qty * 3 }
        """,
    ),
    "failed": (
        common_pb2.EXECUTION_PHASE_FAILED,
        RAISE_BAD_ORDER,
    ),
}


@pytest.mark.parametrize("outcome", sorted(RUNS))
async def test_workflow_execution_history_replays(fleet: Fleet, outcome: str) -> None:
    phase, body = RUNS[outcome]
    name = f"history-{outcome}"
    await apply_workflow(fleet, name, body)
    execution = await finish(fleet, (await start(fleet, name, {"qty": 2})).id)
    assert execution.status.phase == phase, execution.status

    # The store is terminal before the workflow closes; the history is complete only then.
    handle = fleet.temporal.get_workflow_handle(execution.workflow_id)
    if phase == common_pb2.EXECUTION_PHASE_COMPLETED:
        await handle.result()
    else:
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    history = await handle.fetch_history()

    replayed = await Replayer(workflows=WORKFLOWS).replay_workflow(
        WorkflowHistory.from_json(history.workflow_id, history.to_json()),
        raise_on_replay_failure=False,
    )
    assert replayed.replay_failure is None, replayed.replay_failure
    if RECORD:
        path = HISTORIES / f"workflow_execution_{outcome}.json"
        path.write_text(history.to_json() + "\n", encoding="utf-8")
