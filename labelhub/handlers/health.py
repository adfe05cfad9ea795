"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from sqlalchemy import text

from labelhub import keys
from labelhub.errors import Unavailable
from labelhub.handlers.routing import Access, Call, Routes

routes = Routes("health")
CHECK_TIMEOUT_S = 5.0


class StatusOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    status: str
    checks: dict[str, str]


@routes.get("/health", access=Access.PUBLIC)
async def health(call: Call) -> StatusOut:
    """Answers `{"status": "ok"}` while the process lives; anyone may call."""
    return StatusOut(status="ok")


@routes.get("/ready", access=Access.PUBLIC, errors=(503,))
async def ready(call: Call) -> ReadyOut:
    """200 when the database (and Label Studio, if configured) answer.

    Otherwise 503, naming each check that failed in `error.details`.
    """
    checks = {
        "database": await _check_database(call),
        "label_studio": await _check_studio(call),
    }
    failed = {
        name: result
        for name, result in checks.items()
        if result not in ("ok", "not configured")
    }
    if failed:
        summary = "; ".join(f"{name}: {result}" for name, result in failed.items())
        raise Unavailable(f"not ready: {summary}", details=checks)
    return ReadyOut(status="ready", checks=checks)


async def _check_database(call: Call) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            async with call.app[keys.ENGINE].connect() as connection:
                await connection.execute(text("SELECT 1"))
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S} s"
    except Exception as exc:  # any failure at all means "not ready"
        return describe(exc)
    return "ok"


def describe(exc: BaseException) -> str:
    """An exception as one short line: its type and first line of text."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


async def _check_studio(call: Call) -> str:
    studio = call.app[keys.STUDIO]
    if studio is None:
        return "not configured"
    return await studio.check_health(CHECK_TIMEOUT_S)
