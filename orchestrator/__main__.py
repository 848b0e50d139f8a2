"""`python -m orchestrator`: run one orchestrator process until SIGTERM/Ctrl-C."""

from __future__ import annotations

from orchestrator.app import Orchestrator, OrchestratorSettings
from polyfleet.process import serve


def main() -> None:
    """Entry point."""
    serve(lambda: Orchestrator(OrchestratorSettings()))


if __name__ == "__main__":
    main()
