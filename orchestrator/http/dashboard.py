"""The dashboard: static files served at ``/`` and the settings it reads on load.

The page is plain HTML, CSS and JavaScript committed in ``dashboard/`` (no build step, no
CDN): it calls the same HTTP/JSON API and SSE streams as any other client.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).with_name("dashboard")

# The page shows text written by agents, tools and workflows. It only ever inserts it as
# text, and this policy makes sure nothing else could run either: scripts, styles and
# connections are the orchestrator's own, and no other site may frame the page.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class DashboardConfig:
    """What the page needs to know besides the API.

    Attributes:
        temporal_ui_url: Base URL of the Temporal UI; empty: no link to workflows.
        namespace: The Temporal namespace, for the Temporal UI link.
        trace_url_template: A trace link with ``{trace_id}``; empty: no link.
        stuck_after_seconds: RUNNING without events for longer than this shows "stuck?".
        auth_required: Whether calls need a bearer token (the page then asks for one).

    """

    temporal_ui_url: str
    namespace: str
    trace_url_template: str
    stuck_after_seconds: float
    auth_required: bool

    def as_json(self) -> dict[str, object]:
        """The config as the page reads it (lowerCamelCase, like the API's JSON)."""
        return {
            "temporalUiUrl": self.temporal_ui_url,
            "namespace": self.namespace,
            "traceUrlTemplate": self.trace_url_template,
            "stuckAfterSeconds": self.stuck_after_seconds,
            "authRequired": self.auth_required,
        }


def dashboard_routes(config: DashboardConfig) -> list[BaseRoute]:
    """The dashboard's routes: ``/dashboard/config.json`` and the static files at ``/``."""

    async def config_json(request: Request) -> Response:
        return JSONResponse(config.as_json(), headers={"Cache-Control": "no-store"})

    return [
        Route("/dashboard/config.json", config_json, methods=["GET"]),
        # Last: everything the API did not match is a file of the page (index.html at /).
        Mount(
            "/",
            app=_WithHeaders(StaticFiles(directory=STATIC_DIR, html=True), PAGE_HEADERS),
            name="dashboard",
        ),
    ]


class _WithHeaders:
    """Adds fixed headers to every response of an ASGI app (unless it set them)."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self._app = app
        self._headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self._headers.items():
                    headers.setdefault(name, value)
            await send(message)

        await self._app(scope, receive, send_with_headers)
