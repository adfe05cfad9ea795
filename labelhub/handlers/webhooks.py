"""The receiver of Label Studio's webhooks."""

from __future__ import annotations

import time
from typing import Any, ClassVar, Self

import orjson
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from labelhub import keys
from labelhub.errors import BadRequest
from labelhub.handlers.middleware import REQUEST_ID
from labelhub.handlers.routing import Access, Call, RawBody, Routes, read_body
from labelhub.store import webhook_events
from labelhub.studio.payloads import Malformed
from labelhub.sync.events import KNOWN_ACTIONS, Event, parse_event

log = structlog.get_logger(__name__)
routes = Routes("webhooks")


class WebhookBody(RawBody):
    """A Label Studio webhook delivery, read as raw bytes (it can be megabytes)."""

    openapi: ClassVar[dict[str, Any]] = {
        "required": True,
        "description": 'Label Studio\'s webhook body: `{"action": …}` and, when '
        "the webhook sends payloads, the annotation, task(s) and project.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["action"],
                    "properties": {"action": {"type": "string", "minLength": 1}},
                }
            }
        },
    }

    def __init__(self, raw: bytes, received_s: float) -> None:
        self.raw = raw
        self.received_s = received_s

    @classmethod
    async def read(cls, request: web.Request, limit_bytes: int) -> Self:
        received_s = time.perf_counter()
        limit = request.app[keys.SETTINGS].webhook_max_body_mb * 1024 * 1024
        return cls(await read_body(request, limit), received_s)


class WebhookQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="the project, for webhooks registered without payloads",
    )


class WebhookAck(BaseModel):
    status: str = Field(
        description="applied, duplicate, stale, pending (task not known yet) or ignored"
    )
    detail: str


@routes.post(
    "/webhooks/label-studio", access=Access.WEBHOOK, errors=(400, 401, 413, 503)
)
async def receive_webhook(
    call: Call, query: WebhookQuery, body: WebhookBody
) -> WebhookAck:
    """Apply a Label Studio webhook to the shadow index; 200 once committed.

    Needs `X-Webhook-Secret` equal to WEBHOOK_SECRET (401 otherwise, and for
    every delivery when none is configured). Idempotent: a repeated or older
    event changes nothing. 400 for a body that is not a JSON object with an
    `action` or whose fields have the wrong types; 413 over the size limit;
    503 when the database cannot store it.
    """
    event = await _event_of(call, body.raw, query.project)

    outcome = await call.app[keys.WEBHOOKS].submit(
        event, body.received_s, call.request.get(REQUEST_ID)
    )
    duration_s = time.perf_counter() - body.received_s
    call.app[keys.METRICS].observe_webhook(
        _metric_action(event.action), outcome.status, duration_s
    )
    structlog.contextvars.bind_contextvars(
        action=event.action[:64], outcome=outcome.status, project_id=event.project_id
    )
    return WebhookAck(status=outcome.status, detail=outcome.detail)


async def _event_of(call: Call, raw: bytes, project: int | None) -> Event:
    """The event a delivery carries, or 400 (recorded) for a malformed one.

    The decoded body (megabytes for a big TASKS_CREATED, and a 50-key project
    object in every delivery) lives only in here: deliveries waiting for
    their group commit keep just their events, which leaves the garbage
    collector far less to walk while they wait.
    """
    try:
        # orjson: a delivery is parsed on every annotator's save, three
        # times faster than the standard library does it.
        decoded = orjson.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    try:
        return parse_event(decoded, call.app[keys.SETTINGS].ls_label_from_name, project)
    except Malformed as exc:
        await _record_rejected(call, decoded, str(exc))
        raise BadRequest(f"malformed delivery: {exc}") from None


NO_ACTION = "(none)"


def _metric_action(action: str) -> str:
    """The action as a metric label: anything Label Studio does not send is
    `other`, so that made-up actions cannot grow the metric without bound."""
    return action if action in KNOWN_ACTIONS or action == NO_ACTION else "other"


async def _record_rejected(call: Call, decoded: Any, reason: str) -> None:
    action = decoded.get("action") if isinstance(decoded, dict) else None
    label = action if isinstance(action, str) and action else NO_ACTION
    call.app[keys.METRICS].webhooks.labels(_metric_action(label), "rejected").inc()
    async with call.app[keys.SESSIONS].begin() as session:
        await webhook_events.record(
            session,
            [
                {
                    "action": label[:64],
                    "ls_project_id": None,
                    "ls_ids": None,
                    "outcome": "rejected",
                    "detail": reason[:500],
                    "duration_ms": 0.0,
                }
            ],
        )
