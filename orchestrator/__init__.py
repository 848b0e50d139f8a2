"""polyfleet's orchestrator: gRPC API, LMDB store and workflow-only Temporal workers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.app import Orchestrator, OrchestratorSettings

__all__ = ["Orchestrator", "OrchestratorSettings"]


def __getattr__(name: str) -> Any:
    # Imported lazily: whatever imports a workflow module (the replay tests, a worker built
    # elsewhere) must not pull in the gRPC server, the store and their dependencies.
    if name in __all__:
        from orchestrator import app

        return getattr(app, name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
