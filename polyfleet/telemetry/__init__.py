"""OpenTelemetry for every polyfleet process: metrics (`metrics.py`), traces (`tracing.py`).

What each exports and how to collect it: docs/observability.md.
"""
