"""The orchestrator's HTTP face: the HTTP/JSON API, its SSE streams and the dashboard."""
