"""Request ids, the one log line per request, and errors as JSON."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from labelhub import keys
from labelhub.errors import LabelhubError, TooManyRequests

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The request's id, for work it hands to other tasks (their lines carry it).
REQUEST_ID = web.RequestKey("request_id", str)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def route_of(request: web.Request) -> str:
    """The route template (`/datasets/{dataset_id}`), never raw ids."""
    route = request.match_info.route
    resource = route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def serve_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to every log line of the request, answer labelhub's
    errors and aiohttp's own as `{"error": {...}}` bodies, and log it once.

    One middleware rather than two: each layer costs every request a call.
    """
    given = request.headers.get("X-Request-ID", "")
    request_id = given if _REQUEST_ID.match(given) else os.urandom(16).hex()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    request[REQUEST_ID] = request_id
    started = time.perf_counter()

    response = await _answer(request, handler)

    duration_s = time.perf_counter() - started
    response.headers["X-Request-ID"] = request_id
    route = route_of(request)
    request.app[keys.METRICS].observe_request(
        request.method, route, response.status, duration_s
    )
    log.info(
        "request_finished",
        method=request.method,
        path=request.path,
        route=route,
        status=response.status,
        duration_ms=round(duration_s * 1000, 2),
    )
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except LabelhubError as exc:
        return error_response(exc.status, exc.code, exc.message, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        message = _http_message(request, exc)
        response = error_response(exc.status, code, message, None)
        if isinstance(exc, web.HTTPMethodNotAllowed):
            response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
    except Exception:
        log.exception("request_crashed", method=request.method, path=request.path)
        return error_response(500, "internal", "internal error", None)


def error_response(
    status: int, code: str, message: str, exc: LabelhubError | None
) -> web.Response:
    error: dict[str, object] = {"code": code, "message": message}
    if exc is not None and exc.details is not None:
        error["details"] = exc.details
    response = web.json_response({"error": error}, status=status)
    if isinstance(exc, TooManyRequests):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def _http_message(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"no route {request.method} {request.path}"
    if exc.status == 405:
        return f"{request.method} is not allowed on {request.path}"
    if exc.status == 413:
        return "the body is larger than this route accepts"
    return exc.text or exc.reason
