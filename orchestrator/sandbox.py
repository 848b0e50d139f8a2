"""How the orchestrator's workflows are sandboxed."""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

# The sandbox re-imports every module that is not passed through for each workflow run:
# about a third of the orchestrator's workflow CPU per execution went to re-executing
# orchestrator.workflows and its imports (docs/benchmarks.md). The orchestrator's workflow
# modules and everything they import keep no mutable module state, so every module is passed
# through; the sandbox still refuses non-deterministic calls (clock, randomness, I/O) at run
# time. OpenTelemetry's context, process-wide, has to be the host's module in any case.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
)
