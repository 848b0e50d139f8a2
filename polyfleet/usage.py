"""Adding up token usage: how the orchestrator totals an execution's usage reports.

One definition, because the runner adds reports the same way when it sends several as one
(runner/progress.py) and keeps the turn's total: both must end where the orchestrator's
merge of the separate reports would.
"""

from __future__ import annotations

from polyfleet.v1 import common_pb2


def add_usage(total: common_pb2.Usage, usage: common_pb2.Usage) -> None:
    """Add ``usage`` into ``total``; a currency given replaces the one held."""
    total.input_tokens += usage.input_tokens
    total.output_tokens += usage.output_tokens
    total.total_tokens += usage.total_tokens
    total.cost += usage.cost
    total.model_calls += usage.model_calls
    total.currency = usage.currency or total.currency
