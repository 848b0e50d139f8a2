"""Replay committed workflow histories to catch non-deterministic workflow changes.

The histories were recorded from real runs on the Temporal dev server; the
workflow-execution ones by tests/integration/workflows/test_histories.py with
``POLYFLEET_RECORD_HISTORIES=1``. When a workflow change is intentionally incompatible,
version it with `workflow.patched` rather than re-recording these files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from orchestrator.workflows import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_without_nondeterminism(path: Path) -> None:
    history = _load(path)
    result = await Replayer(workflows=WORKFLOWS).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, result.replay_failure


def test_histories_are_committed() -> None:
    # A completed and a failed run of each orchestrator workflow.
    assert {p.stem for p in HISTORIES} >= {
        f"{kind}_execution_{outcome}"
        for kind in ("agent", "workflow")
        for outcome in ("completed", "failed")
    }
