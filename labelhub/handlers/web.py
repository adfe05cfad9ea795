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


def add_web(app: web.Application) -> None:
    """`/` is the dashboard; its scripts and styles live under `/static/`."""
    app.router.add_get("/", index, name="dashboard")
    app.router.add_static("/static/", WEB_DIR, name="static", append_version=False)
