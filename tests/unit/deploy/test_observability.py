"""deploy/observability: the dashboard and the alert rules parse and name only exported metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from polyfleet.telemetry.metrics import exported_series

OBSERVABILITY = Path(__file__).resolve().parents[3] / "deploy" / "observability"
# A metric name in PromQL: polyfleet's or Temporal's (labels, functions and keywords are not).
METRIC = re.compile(r"\b((?:polyfleet|temporal)_[a-z_]+)\b")


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((OBSERVABILITY / "dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load((OBSERVABILITY / "alerts.yaml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_the_dashboard_parses_and_names_only_exported_metrics() -> None:
    expressions = dashboard_expressions()
    assert len(expressions) > 10
    named = {name for expr in expressions for name in METRIC.findall(expr)}
    assert named, "no metric found"
    assert sorted(named - exported_series()) == []


def test_the_alert_rules_parse_and_name_only_exported_metrics() -> None:
    rules = alert_rules()
    alerts = {rule["alert"] for rule in rules}
    # The four: backlog age, failure rate, no runner polling, stuck executions.
    assert {
        "PolyfleetBacklogAge",
        "PolyfleetExecutionFailureRate",
        "PolyfleetNoRunnerPolling",
        "PolyfleetStuckExecutions",
    } <= alerts
    for rule in rules:
        assert rule["expr"].strip() and rule["annotations"]["summary"], rule["alert"]
        named = set(METRIC.findall(rule["expr"]))
        assert named, rule["alert"]
        assert sorted(named - exported_series()) == [], rule["alert"]


def test_an_unknown_metric_would_be_caught() -> None:
    assert METRIC.findall("rate(polyfleet_no_such_thing_total[5m])") == [
        "polyfleet_no_such_thing_total"
    ]
    assert "polyfleet_no_such_thing_total" not in exported_series()
