"""The floor for the webhook benchmark: an aiohttp app that only parses the body.

POST /webhooks/label-studio reads the body, parses it as JSON (with orjson,
the parser the daemon's receiver uses, so that the comparison measures
labelhub's own work and not a choice of parser) and answers 200; GET /health
answers 200. Run as its own process, like the daemon:

    .venv/bin/python bench/bare_handler.py --port 8100
"""

from __future__ import annotations

import argparse

import orjson
from aiohttp import web


async def receive(request: web.Request) -> web.Response:
    body = orjson.loads(await request.read())
    return web.json_response({"status": "ok", "action": body.get("action")})


async def health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/webhooks/label-studio", receive)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
