"""The orchestrator's workflows (registered only on orchestrator task queues)."""

from orchestrator.workflows.agent_execution import AgentExecutionWorkflow

WORKFLOWS = [AgentExecutionWorkflow]

__all__ = ["WORKFLOWS", "AgentExecutionWorkflow"]
