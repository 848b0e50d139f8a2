"""`python -m runner`: run one runner process until SIGTERM/Ctrl-C."""

from __future__ import annotations

from polyfleet.process import serve
from runner.app import Runner, RunnerAppSettings


def main() -> None:
    """Entry point."""
    serve(lambda: Runner(RunnerAppSettings()))


if __name__ == "__main__":
    main()
