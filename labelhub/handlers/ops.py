"""For operators: the API contract and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select

from labelhub import keys
from labelhub.handlers.routing import Access, Call, Routes
from labelhub.store.models import SyncState, TaskCount, utcnow

routes = Routes("operations")


@routes.get(
    "/openapi.json",
    access=Access.PUBLIC,
    raw_response={
        "description": "The OpenAPI 3.1 document of every route",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
)
async def openapi_document(call: Call) -> web.Response:
    """This API's OpenAPI 3.1 document, built from the route declarations."""
    return web.json_response(call.app[keys.OPENAPI])


@routes.get(
    "/metrics",
    access=Access.PUBLIC,
    raw_response={
        "description": "Prometheus text exposition format",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
)
async def metrics(call: Call) -> web.Response:
    """Prometheus metrics; the README lists each one."""
    await _refresh_gauges(call)
    body = generate_latest(call.app[keys.METRICS].registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def _refresh_gauges(call: Call) -> None:
    """Tasks by status and reconciliation lag, from two small tables."""
    gauges = call.app[keys.METRICS]
    async with call.app[keys.SESSIONS]() as session:
        counts = await session.execute(
            select(
                TaskCount.dataset_id, TaskCount.status, func.sum(TaskCount.n)
            ).group_by(TaskCount.dataset_id, TaskCount.status)
        )
        states = await session.execute(
            select(SyncState.ls_project_id, SyncState.last_success_at)
        )
        rows: list[Any] = list(counts)
        lags: list[Any] = list(states)
    gauges.tasks.clear()
    for dataset_id, status, n in rows:
        gauges.tasks.labels(str(dataset_id), status).set(float(n or 0))
    now = utcnow()
    for project_id, last_success_at in lags:
        if last_success_at is not None:
            lag_s = (now - last_success_at).total_seconds()
            gauges.reconcile_lag.labels(str(project_id)).set(lag_s)
