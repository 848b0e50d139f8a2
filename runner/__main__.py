"""`python -m runner`: run one runner process until SIGTERM/Ctrl-C."""

from __future__ import annotations

from polyfleet.config import MetricsSettings
from polyfleet.process import serve
from polyfleet.telemetry import tracing
from runner.app import Runner, RunnerAppSettings


def main() -> None:
    """Entry point."""
    # From OTEL_*: spans over OTLP when an endpoint is set, else off (docs/observability.md).
    tracing.setup(tracing.RUNNER_SERVICE)
    serve(lambda: Runner(RunnerAppSettings(metrics=MetricsSettings())))


if __name__ == "__main__":
    main()
