"""polyfleet's runner: activity-only Temporal workers for the activity contract."""

from runner.app import Runner, RunnerAppSettings

__all__ = ["Runner", "RunnerAppSettings"]
