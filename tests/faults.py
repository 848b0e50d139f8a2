"""Fault injection for process tests: ``python -m tests.faults FAULT``.

Production code has no fault switches: its constructors take test hooks instead
(``Orchestrator(after_persist=...)``, ``Runner(after_checkpoint=...)``). This entry point
runs the real process, as ``python -m orchestrator`` and ``python -m runner`` do, with a
hook that SIGKILLs it at the chosen point:

- ``kill-before-workflow-start``: an orchestrator that dies between persisting an
  execution and starting its workflow (the window the reconciler repairs);
- ``kill-after-checkpoint N``: a runner that dies right after storing workflow
  checkpoint N of an execution, before any heartbeat carried it.
"""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Sequence

from orchestrator.app import Orchestrator, OrchestratorSettings
from polyfleet.process import serve
from runner.app import Runner, RunnerAppSettings


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m tests.faults")
    faults = parser.add_subparsers(dest="fault", required=True)
    faults.add_parser("kill-before-workflow-start", help="an orchestrator")
    checkpoint = faults.add_parser("kill-after-checkpoint", help="a runner")
    checkpoint.add_argument("sequence", type=int, help="the checkpoint to die after")
    args = parser.parse_args(argv)
    if args.fault == "kill-before-workflow-start":
        serve(lambda: Orchestrator(OrchestratorSettings(), after_persist=lambda _id: _die()))
    else:
        sequence: int = args.sequence

        def after_checkpoint(stored: int) -> None:
            if stored == sequence:
                _die()

        serve(lambda: Runner(RunnerAppSettings(), after_checkpoint=after_checkpoint))


if __name__ == "__main__":
    main()
