"""The web dashboard: static files served by the daemon itself."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# Everything the page needs comes from the daemon; nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def index(request: web.Request) -> web.StreamResponse:
    response = web.FileResponse(WEB_DIR / "index.html")
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "no-cache"
    return response


async def _static_headers(request: web.Request, response: web.StreamResponse) -> None:
    # Scripts import each other by plain paths: revalidate them on every load,
    # so an upgraded daemon never runs alongside a browser's stale modules.
    if request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"


def add_web(app: web.Application) -> None:
    """`/` is the dashboard; its scripts and styles live under `/static/`."""
    app.router.add_get("/", index, name="dashboard")
    app.router.add_static("/static/", WEB_DIR, name="static", append_version=False)
    app.on_response_prepare.append(_static_headers)
