"""The audit trail of webhook deliveries (never their payloads)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.store.models import WebhookEvent, utcnow


async def record(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Rows of action, ls_project_id, ls_ids, outcome, detail, duration_ms."""
    if rows:
        now = utcnow()
        await session.execute(
            insert(WebhookEvent), [{"received_at": now, **row} for row in rows]
        )


async def prune(session: AsyncSession, keep_days: int) -> int:
    result = await session.execute(
        delete(WebhookEvent).where(
            WebhookEvent.received_at < utcnow() - timedelta(days=keep_days)
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
