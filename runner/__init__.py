"""polyfleet's runner: activity-only Temporal workers for the activity contract."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.app import Runner, RunnerAppSettings

__all__ = ["Runner", "RunnerAppSettings"]


def __getattr__(name: str) -> Any:
    # Imported lazily: `runner.dsl` is also used by the orchestrator and the CLI to validate
    # workflow documents, and must not pull in the agent runtime (LangChain, MCP) with it.
    if name in __all__:
        from runner import app

        return getattr(app, name)
    raise AttributeError(f"module 'runner' has no attribute {name!r}")
