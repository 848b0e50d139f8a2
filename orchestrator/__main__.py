"""`python -m orchestrator`: run one orchestrator process until SIGTERM/Ctrl-C."""

from __future__ import annotations

import logging

from orchestrator.app import Orchestrator, OrchestratorSettings
from orchestrator.ownership import StartupRefusedError
from polyfleet.config import MetricsSettings
from polyfleet.process import serve
from polyfleet.telemetry import tracing

# Exit status when another orchestrator owns the data directory, the queues or the port.
EXIT_REFUSED = 2

logger = logging.getLogger("orchestrator")


def main() -> None:
    """Entry point."""
    # From OTEL_*: spans over OTLP when an endpoint is set, else off (docs/observability.md).
    tracing.setup(tracing.ORCHESTRATOR_SERVICE)
    try:
        serve(lambda: Orchestrator(OrchestratorSettings(metrics=MetricsSettings())))
    except StartupRefusedError as exc:
        # An expected refusal, not a crash: one clear line instead of a traceback.
        logger.error("orchestrator refuses to start: %s", exc)
        raise SystemExit(EXIT_REFUSED) from None


if __name__ == "__main__":
    main()
