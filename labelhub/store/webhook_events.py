"""The audit trail of webhook deliveries (never their payloads)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import delete, insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.store.models import WebhookEvent, utcnow
from labelhub.store.sql import dialect

# Every group commit writes one row per delivery. On PostgreSQL they travel as
# one JSON parameter of one statement; fixed text, nothing from outside
# reaches the SQL.
_COLUMNS = "received_at, action, ls_project_id, ls_ids, outcome, detail, duration_ms"
_PG_RECORD = text(
    f"INSERT INTO webhook_events ({_COLUMNS}) "  # noqa: S608
    f"SELECT {_COLUMNS} FROM jsonb_populate_recordset("
    "NULL::webhook_events, CAST(:rows AS jsonb))"
)


async def record(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Rows of action, ls_project_id, ls_ids, outcome, detail, duration_ms."""
    if rows:
        await session.execute(*record_statement(session, rows))


def record_statement(
    session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> tuple[Any, Any]:
    """The statement `record` runs, for a caller that queues it."""
    now = utcnow()
    stamped = [{"received_at": now, **row} for row in rows]
    if dialect(session) == "postgresql":
        return _PG_RECORD, {"rows": orjson.dumps(stamped).decode()}
    return _INSERT, stamped


_INSERT = insert(WebhookEvent)


async def prune(session: AsyncSession, keep_days: int) -> int:
    result = await session.execute(
        delete(WebhookEvent).where(
            WebhookEvent.received_at < utcnow() - timedelta(days=keep_days)
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
