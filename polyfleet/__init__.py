"""polyfleet: durable agent and workflow executions on a polyglot Temporal worker fleet."""
