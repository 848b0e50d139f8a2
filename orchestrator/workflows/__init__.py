"""The orchestrator's workflows (registered only on orchestrator task queues)."""

from orchestrator.workflows.agent_execution import AgentExecutionWorkflow
from orchestrator.workflows.workflow_execution import WorkflowExecutionWorkflow

WORKFLOWS = [AgentExecutionWorkflow, WorkflowExecutionWorkflow]

__all__ = ["WORKFLOWS", "AgentExecutionWorkflow", "WorkflowExecutionWorkflow"]
