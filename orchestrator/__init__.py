"""polyfleet's orchestrator: gRPC API, LMDB store and workflow-only Temporal worker."""

from orchestrator.app import Orchestrator, OrchestratorSettings

__all__ = ["Orchestrator", "OrchestratorSettings"]
