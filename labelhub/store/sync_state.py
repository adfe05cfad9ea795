"""Where reconciliation of each Label Studio project stands."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.store.models import Dataset, SyncState, utcnow
from labelhub.store.sql import upsert


async def tracked_projects(session: AsyncSession, default: int | None) -> set[int]:
    """Projects some dataset imports into, plus the configured default."""
    rows = await session.scalars(
        select(Dataset.ls_project_id)
        .where(Dataset.ls_project_id.is_not(None))
        .distinct()
    )
    projects = {project for project in rows if project is not None}
    if default is not None:
        projects.add(default)
    return projects


async def request_early(
    session: AsyncSession, project_id: int | None, tracked: Iterable[int]
) -> None:
    """Ask for a reconciliation at the next tick (all projects when unknown)."""
    projects = [project_id] if project_id is not None else sorted(tracked)
    now = utcnow()
    for project in projects:
        statement = upsert(session, SyncState).values(
            ls_project_id=project, early_requested_at=now
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[SyncState.ls_project_id],
                set_={"early_requested_at": now},
            )
        )


async def get(session: AsyncSession, project_id: int) -> SyncState | None:
    return await session.get(SyncState, project_id)


async def record_success(
    session: AsyncSession,
    project_id: int,
    *,
    watermark_at: datetime | None,
    full: bool,
    job_id: int | None,
    started_at: datetime,
) -> None:
    """Remember a finished run; an early request made during it stays."""
    now = utcnow()
    values: dict[str, object] = {
        "ls_project_id": project_id,
        "last_success_at": now,
        "last_job_id": job_id,
        "watermark_at": watermark_at,
    }
    if full:
        values["last_full_at"] = started_at
    statement = upsert(session, SyncState).values(**values)
    updates = {key: value for key, value in values.items() if key != "ls_project_id"}
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[SyncState.ls_project_id], set_=updates
        )
    )
    state = await session.get(SyncState, project_id)
    if state and state.early_requested_at and state.early_requested_at <= started_at:
        state.early_requested_at = None
